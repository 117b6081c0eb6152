import FerryCore
import FerryTestSupport
import Foundation
import Logging
import PostgresWire
import Testing
@testable import FerryPostgres

@Suite struct ArrayLiteralTests {
    @Test func everyElementIsQuotedAndNullStaysNull() {
        #expect(PostgresDestination.arrayLiteral(["a", nil, "b\"c", "d\\e", "{x,y}", ""]) == #"{"a",NULL,"b\"c","d\\e","{x,y}",""}"#)
        #expect(PostgresDestination.arrayLiteral([]) == "{}")
    }
}
