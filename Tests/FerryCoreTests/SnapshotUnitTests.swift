import FerryCore
import NIOCore
import Testing

@Suite("Snapshot (pure parts)")
struct SnapshotUnitTests {
    // MARK: Table names

    @Test("table names parse like PostgreSQL identifiers")
    func tableSelectors() throws {
        #expect(try TableSelector(parsing: "public.orders") == .table(schema: "public", name: "orders"))
        #expect(try TableSelector(parsing: "Orders") == .table(schema: "public", name: "orders"))
        #expect(try TableSelector(parsing: " sales.* ") == .schema("sales"))
        #expect(try TableSelector(parsing: "\"Sales\".\"Order Items\"") == .table(schema: "Sales", name: "Order Items"))
        #expect(try TableSelector(parsing: "\"a.b\".\"say \"\"hi\"\"\"") == .table(schema: "a.b", name: "say \"hi\""))
        #expect(try TableSelector(parsing: "s.\"*\"") == .table(schema: "s", name: "*"))
        for bad in ["", "a.b.c", "a.", ".b", "\"open", "*", "a\"b\".c", "\"x\"y.z"] {
            let error = #expect(throws: SnapshotError.self, "\(bad)") { try TableSelector(parsing: bad) }
            #expect(error?.code == .invalidTableName)
            #expect(error?.fix != nil)
        }
        #expect(TableSelector.table(schema: "Sales", name: "orders").description == "\"Sales\".orders")
        #expect(TableSelector.schema("sales").description == "sales.*")
    }

    // MARK: Chunk planning

    func table(pages: Int, rows: Int? = nil, kind: SnapshotTable.Kind = .table) -> SnapshotTable {
        SnapshotTable(schema: TableSchema(relationID: 42, schema: "public", name: "t",
                                          columns: [.init(name: "id", typeOID: 23, isKey: true)]),
                      kind: kind, pages: pages, estimatedRows: rows)
    }

    func ranges(_ chunks: [SnapshotChunk]) -> [String] {
        chunks.map { "\($0.firstPage)-\($0.endPage.map(String.init) ?? "end")" }
    }

    @Test("tables split into page ranges, the last one open-ended; small tables are one chunk")
    func planning() {
        let planner = SnapshotChunkPlanner(chunkSize: .pages(30))
        let chunks = planner.plan(table(pages: 100))
        #expect(ranges(chunks) == ["0-30", "30-60", "60-90", "90-end"])
        #expect(chunks.map(\.ordinal) == [0, 1, 2, 3])
        #expect(chunks.map(\.estimatedPages) == [30, 30, 30, 10])
        #expect(chunks[0].ctidPredicate == "ctid >= '(0,0)'::tid AND ctid < '(30,0)'::tid")
        #expect(chunks[3].ctidPredicate == "ctid >= '(90,0)'::tid")
        #expect(chunks.allSatisfy { $0.table == "public.t" && $0.relationID == 42 })

        for pages in [0, 1, 30] {
            let small = planner.plan(table(pages: pages))
            #expect(ranges(small) == ["0-end"])
            #expect(small[0].isWholeTable && small[0].ctidPredicate == nil)
        }
        #expect(ranges(planner.plan(table(pages: 31))) == ["0-30", "30-end"])
        #expect(ranges(planner.plan(table(pages: 5_000, kind: .partitioned))) == ["0-end"])
        // Deterministic.
        #expect(planner.plan(table(pages: 100)) == chunks)
    }

    @Test("chunk ids name their page range, so resume skips exactly what was done")
    func resumePlanning() {
        let planner = SnapshotChunkPlanner(chunkSize: .pages(30))
        let chunks = planner.plan(table(pages: 100))
        for chunk in chunks {
            let range = SnapshotChunk.pageRange(id: chunk.id)
            #expect(range?.first == chunk.firstPage && range?.end == chunk.endPage)
        }
        #expect(Set(chunks.map(\.id)).count == chunks.count)

        #expect(ranges(planner.plan(table(pages: 100), done: [chunks[0].id, chunks[2].id])) == ["30-60", "90-end"])
        #expect(planner.plan(table(pages: 100), done: Set(chunks.map(\.id))).isEmpty)
        // The open-ended chunk covers everything after its start, even after the table grew.
        #expect(ranges(planner.plan(table(pages: 500), done: [chunks[3].id])) == ["0-30", "30-60", "60-90"])
        // Resume with another chunk size.
        #expect(ranges(SnapshotChunkPlanner(chunkSize: .pages(50)).plan(table(pages: 100), done: [chunks[0].id]))
                == ["30-80", "80-end"])
        #expect(ranges(SnapshotChunkPlanner(chunkSize: .pages(20)).plan(table(pages: 100), done: [chunks[1].id]))
                == ["0-20", "20-30", "60-80", "80-end"])
        // After the table grew: the old open end was planned as a bounded chunk now.
        #expect(ranges(planner.plan(table(pages: 130), done: Set(chunks.dropLast().map(\.id)))) == ["90-120", "120-end"])
        // Ids that are not chunk ids are ignored; gaps stop at the table's current size.
        #expect(ranges(planner.plan(table(pages: 10), done: [0])) == ["0-end"])
        #expect(ranges(planner.plan(table(pages: 10), done: [-1])) == ["0-10"])
        #expect(ranges(planner.plan(table(pages: 40), done: [chunks[0].id, chunks[3].id])) == ["30-40"])
        // A whole-table chunk done (e.g. of a partitioned table) leaves nothing.
        #expect(planner.plan(table(pages: 10, kind: .partitioned), done: [chunks[0].id, SnapshotChunk(table: "public.t", relationID: 42, firstPage: 0, endPage: nil).id]).isEmpty)
    }

    @Test("chunk sizes in bytes and rows")
    func chunkSizes() {
        #expect(SnapshotChunkSize.bytes(64 << 20).pagesPerChunk(for: table(pages: 1)) == 8192)
        #expect(SnapshotChunkSize.defaultSize.pagesPerChunk(for: table(pages: 1)) == 8192)
        #expect(SnapshotChunkSize.rows(1000).pagesPerChunk(for: table(pages: 100, rows: 10_000)) == 10)
        #expect(SnapshotChunkSize.rows(1000).pagesPerChunk(for: table(pages: 100, rows: nil)) == 8192)
        #expect(SnapshotChunkSize.pages(0).pagesPerChunk(for: table(pages: 1)) == 1)
    }

    // MARK: Binary COPY framing

    func copyHeader(extension bytes: [UInt8] = [], flags: UInt32 = 0) -> SnapshotBytes {
        SnapshotBytes([0x50, 0x47, 0x43, 0x4F, 0x50, 0x59, 0x0A, 0xFF, 0x0D, 0x0A, 0x00]).u32(flags).i32(Int32(bytes.count)).raw(bytes)
    }

    func parse(_ bytes: [UInt8], pieceSize: Int = .max) throws -> [[ByteBuffer?]] {
        var parser = BinaryCopyParser()
        var tuples: [[ByteBuffer?]] = []
        var index = 0
        repeat {
            let end = min(bytes.count, index + pieceSize)
            try parser.append(ByteBuffer(bytes: bytes[index..<end]))
            while let tuple = try parser.nextTuple() { tuples.append(tuple.fieldBytes) }
            index = end
        } while index < bytes.count
        try parser.finish()
        return tuples
    }

    @Test("binary COPY framing: header extension, NULL and empty fields, trailer, any split")
    func copyFraming() throws {
        let stream = copyHeader(extension: [1, 2, 3])
            .i16(3).field([0, 0, 0, 7]).field(nil).field([])
            .i16(0)
            .i16(1).field(Array(repeating: 0x61, count: 1000))
            .i16(-1).bytes
        let expected: [[ByteBuffer?]] = [
            [ByteBuffer(bytes: [0, 0, 0, 7]), nil, ByteBuffer()],
            [],
            [ByteBuffer(bytes: Array(repeating: 0x61, count: 1000))],
        ]
        for size in [1, 2, 3, 7, 64, 1000, .max] {
            #expect(try parse(stream, pieceSize: size) == expected, "pieces of \(size)")
        }
        var parser = BinaryCopyParser()
        try parser.append(ByteBuffer(bytes: stream))
        var tuple = try parser.nextTuple()
        #expect(tuple?.fieldCount == 3 && tuple?.byteCount == 2 + 8 + 4 + 4)
        tuple = try parser.nextTuple()
        #expect(tuple?.fieldCount == 0)
        _ = try parser.nextTuple()
        #expect(try parser.nextTuple() == nil && parser.isFinished)
    }

    @Test("malformed binary COPY data throws located errors")
    func copyErrors() {
        let header = copyHeader()
        let cases: [(String, [UInt8])] = [
            ("signature", Array("PGCOPX\n".utf8)),
            ("oids", copyHeader(flags: 1 << 16).i16(-1).bytes),
            ("critical flag", copyHeader(flags: 1 << 20).i16(-1).bytes),
            ("negative extension", SnapshotBytes(Array(header.bytes.prefix(15))).i32(-5).bytes),
            ("negative count", header.i16(-2).bytes),
            ("negative length", header.i16(1).i32(-7).bytes),
            ("after trailer", header.i16(-1).u8(0).bytes),
            ("no trailer", header.i16(1).field([1]).bytes),
            ("truncated field", header.i16(1).i32(10).raw([1, 2]).bytes),
            ("empty", []),
        ]
        for (name, bytes) in cases {
            for size in [1, .max] {
                let error = #expect(throws: SnapshotError.self, "\(name)") { try parse(bytes, pieceSize: size) }
                #expect(error?.code == .malformedCopyData, "\(name)")
                #expect(error?.message.contains("byte") == true, "\(name)")
            }
        }
        var parser = BinaryCopyParser()
        #expect(throws: SnapshotError.self) {
            try parser.append(ByteBuffer(bytes: header.i16(-1).bytes))
            _ = try parser.nextTuple()
            try parser.append(ByteBuffer(bytes: [0]))
        }
    }

    // MARK: Progress

    @Test("progress: fraction, rates, ETA and the terminal line")
    func progress() {
        var progress = SnapshotProgress()
        #expect(progress.fractionDone == nil && progress.estimatedTimeRemaining == nil)
        progress.tablesTotal = 3
        progress.tablesDone = 1
        progress.chunksTotal = 10
        progress.chunksDone = 4
        progress.pagesTotal = 1000
        progress.pagesDone = 250
        progress.rows = 1_234_567
        progress.bytes = 50_000_000
        progress.elapsed = .seconds(10)
        #expect(progress.fractionDone == 0.25)
        #expect(progress.rowsPerSecond == 123_456.7)
        #expect(progress.bytesPerSecond == 5_000_000)
        #expect(progress.estimatedTimeRemaining == .seconds(30))
        #expect(SnapshotProgressReporter.line(progress, barWidth: 8)
                == "snapshot [##......]  25%  1/3 tables  4/10 chunks  1234.6k rows  50.0 MB  5.0 MB/s  ETA 30s")
        progress.elapsed = .seconds(4000)
        #expect(SnapshotProgressReporter.line(progress, barWidth: 4).hasSuffix("ETA 3h20m"))
        progress.isComplete = true
        #expect(progress.fractionDone == 1 && progress.estimatedTimeRemaining == .zero)
        #expect(SnapshotProgressReporter.line(progress, barWidth: 4).hasSuffix("done in 1h06m"))
    }

    @Test("the COPY statement names columns, ONLY, the CTID range and the row filter")
    func copyStatement() {
        let schema = TableSchema(relationID: 1, schema: "My Schema", name: "t\"x", columns: [
            .init(name: "id", typeOID: 23), .init(name: "Mixed Case", typeOID: 25),
        ])
        var table = SnapshotTable(schema: schema, pages: 100, rowFilter: "(id > 5)")
        let chunk = SnapshotChunk(table: schema.qualifiedName, relationID: 1, firstPage: 10, endPage: 20)
        #expect(SnapshotCoordinator.copyStatement(table, chunk) == """
            COPY (SELECT "id", "Mixed Case" FROM ONLY "My Schema"."t""x" WHERE ctid >= '(10,0)'::tid AND ctid < '(20,0)'::tid AND ((id > 5))) TO STDOUT (FORMAT binary)
            """)
        table.rowFilter = nil
        table.kind = .partitioned
        #expect(SnapshotCoordinator.copyStatement(table, SnapshotChunk(table: "", relationID: 1, firstPage: 0, endPage: nil)) == """
            COPY (SELECT "id", "Mixed Case" FROM "My Schema"."t""x") TO STDOUT (FORMAT binary)
            """)
    }
}
