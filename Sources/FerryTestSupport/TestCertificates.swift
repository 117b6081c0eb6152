import FerryLocalPostgres
import Foundation

/// A certificate authority and a server certificate for `localhost`, made with the
/// `openssl` command line at server start, so clients can verify with `verify-full`.
public enum TestCertificates {
    /// Writes ca.crt, ca.key, server.crt and server.key into `directory`; returns ca.crt's path.
    public static func make(in directory: String) throws -> String {
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        guard let openssl = ["/usr/bin/openssl", "/usr/local/bin/openssl"].first(where: fm.isExecutableFile(atPath:)) else {
            throw HarnessError("`openssl` is needed to make the TLS test certificates: apt-get install -y openssl (scripts/test does this)")
        }
        let ca = directory + "/ca", server = directory + "/server"
        try String("""
        basicConstraints = critical, CA:FALSE
        keyUsage = critical, digitalSignature, keyEncipherment
        extendedKeyUsage = serverAuth
        subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1

        """).write(toFile: directory + "/server.ext", atomically: false, encoding: .utf8)
        try Subprocess.run(openssl, [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", ca + ".key", "-out", ca + ".crt", "-days", "3", "-sha256",
            "-subj", "/CN=Ferry Test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ])
        try Subprocess.run(openssl, [
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", server + ".key", "-out", server + ".csr", "-subj", "/CN=localhost",
        ])
        try Subprocess.run(openssl, [
            "x509", "-req", "-in", server + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key", "-CAcreateserial",
            "-out", server + ".crt", "-days", "3", "-sha256", "-extfile", directory + "/server.ext",
        ])
        // PostgreSQL refuses a key file readable by others.
        chmod(server + ".key", 0o600)
        return ca + ".crt"
    }
}
