import Testing
@testable import PGOutput
