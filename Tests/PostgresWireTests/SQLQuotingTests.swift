import PostgresWire
import Testing

@Suite struct SQLQuotingTests {
    @Test func literalsAndIdentifiersDoubleTheirQuote() {
        #expect(SQLQuoting.literal("it's") == "'it''s'")
        #expect(SQLQuoting.literal("") == "''")
        #expect(SQLQuoting.literal("''") == "''''''")
        #expect(SQLQuoting.literal("say \"hi\"") == "'say \"hi\"'")
        #expect(SQLQuoting.identifier("Order Items") == "\"Order Items\"")
        #expect(SQLQuoting.identifier("a\"b") == "\"a\"\"b\"")
        #expect(SQLQuoting.identifier("it's") == "\"it's\"")
        // Multi-byte UTF-8 is kept as it is.
        #expect(SQLQuoting.literal("ünï'€") == "'ünï''€'")
        #expect(SQLQuoting.identifier("tëst\"表") == "\"tëst\"\"表\"")
    }
}
