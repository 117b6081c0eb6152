import PostgresWire

/// Reads the signature algorithm OID of a DER X.509 certificate, to pick the
/// `tls-server-end-point` hash for SCRAM-SHA-256-PLUS.
///
/// Certificate ::= SEQUENCE { tbsCertificate SEQUENCE, signatureAlgorithm SEQUENCE { OID, … }, … }
/// Only the outer structure is walked; every length is checked against the bytes present.
enum CertificateSignature {
    static func hash(ofDER der: [UInt8]) -> CertificateSignatureHash? {
        var reader = DERReader(bytes: der[...])
        guard var certificate = reader.read(tag: 0x30),
              certificate.skip(tag: 0x30),                      // tbsCertificate
              var algorithm = certificate.read(tag: 0x30),      // signatureAlgorithm
              let oid = algorithm.read(tag: 0x06)
        else { return nil }
        return CertificateSignatureHash(signatureAlgorithmOID: dottedOID(oid.bytes))
    }

    static func dottedOID(_ bytes: ArraySlice<UInt8>) -> String {
        guard let first = bytes.first else { return "" }
        var parts = first < 80 ? [Int(first / 40), Int(first % 40)] : [2, Int(first) - 80]
        var value = 0
        for byte in bytes.dropFirst() {
            guard value < (Int.max >> 8) else { return "" }
            value = value << 7 | Int(byte & 0x7F)
            if byte & 0x80 == 0 { parts.append(value); value = 0 }
        }
        return parts.map(String.init).joined(separator: ".")
    }

    struct DERReader {
        var bytes: ArraySlice<UInt8>

        /// Reads one element with the given tag and returns a reader over its contents.
        mutating func read(tag: UInt8) -> DERReader? {
            guard let first = bytes.first, first == tag else { return nil }
            var rest = bytes.dropFirst()
            guard let lengthByte = rest.first else { return nil }
            rest = rest.dropFirst()
            var length = 0
            if lengthByte & 0x80 == 0 {
                length = Int(lengthByte)
            } else {
                let count = Int(lengthByte & 0x7F)
                guard count >= 1, count <= 4, rest.count >= count else { return nil }
                for byte in rest.prefix(count) { length = length << 8 | Int(byte) }
                rest = rest.dropFirst(count)
            }
            guard length <= rest.count else { return nil }
            let contents = rest.prefix(length)
            bytes = rest.dropFirst(length)
            return DERReader(bytes: contents)
        }

        mutating func skip(tag: UInt8) -> Bool { read(tag: tag) != nil }
    }
}
