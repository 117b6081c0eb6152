import Testing
import PostgresWire

@Suite struct LSNTests {
    @Test func parsesAndPrintsLikePostgres() {
        let lsn = LSN("16/B374D848")
        #expect(lsn?.rawValue == 0x16_B374_D848)
        #expect(lsn?.description == "16/B374D848")
        #expect(LSN("0/0") == .invalid)
        #expect(LSN(0xFFFF_FFFF_FFFF_FFFF).description == "FFFFFFFF/FFFFFFFF")
    }

    @Test(arguments: ["", "/", "0/", "/0", "1/2/3", "G/0", "123456789/0", " 0/1", "0/1 ", "-1/0", "+1/0", "0x1/0"])
    func rejectsMalformedText(_ text: String) {
        #expect(LSN(text) == nil)
    }

    @Test func ordersAndMeasuresDistance() {
        let a = LSN("0/10")!, b = LSN("1/0")!
        #expect(a < b)
        #expect(b.bytes(since: a) == 0x1_0000_0000 - 0x10)
        #expect(a.bytes(since: b) == 0)
    }
}
