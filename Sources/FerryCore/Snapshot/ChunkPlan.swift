/// How much of a table one snapshot chunk reads.
public enum SnapshotChunkSize: Sendable, Hashable {
    /// A fixed number of heap pages.
    case pages(Int)
    /// Heap pages worth this many bytes (`bytes / block_size`).
    case bytes(Int)
    /// About this many rows, from the table's rows per page (`reltuples / relpages`); tables
    /// whose row count is unknown (never vacuumed or analyzed) use ``defaultSize``.
    case rows(Int)

    /// 64 MiB of heap pages (8,192 pages of 8 kB).
    public static let defaultSize = SnapshotChunkSize.bytes(64 << 20)

    /// The pages per chunk for `table` (at least 1).
    public func pagesPerChunk(for table: SnapshotTable) -> Int {
        switch self {
        case .pages(let pages):
            return max(1, pages)
        case .bytes(let bytes):
            return max(1, bytes / max(1, table.blockSize))
        case .rows(let rows):
            guard let expected = table.expectedRows, expected > 0, table.pages > 0 else {
                return Self.defaultSize.pagesPerChunk(for: table)
            }
            let rowsPerPage = Double(expected) / Double(table.pages)
            return max(1, Int((Double(max(1, rows)) / rowsPerPage).rounded(.up)))
        }
    }
}

/// One piece of a table the snapshot reads with one `COPY`: the rows whose CTID lies in a
/// range of heap pages, `ctid >= '(first,0)' AND ctid < '(end,0)'`, which PostgreSQL 14+
/// reads with a TID Range Scan (only those pages). The last chunk of a table has no end
/// (`ctid >= '(first,0)'`), so rows on pages added after the size was read are not missed; a
/// chunk from page 0 without end is the whole table, read without a predicate.
///
/// ## Identity
/// ``id`` encodes the page range itself (`first << 32 | end`, end `0xFFFFFFFF` for "to the end
/// of the table"). It is what the ``StateStore`` records per table, so the record of what is
/// done does not depend on the plan: a resumed snapshot with another chunk size, or after the
/// table grew or shrank, still skips exactly the pages already delivered (``SnapshotChunkPlanner``
/// plans only the pages no recorded chunk covers).
public struct SnapshotChunk: Sendable, Hashable, CustomStringConvertible {
    /// The table's key in the ``StateStore``: `schema.name`, unquoted.
    public var table: String
    /// The table's OID.
    public var relationID: UInt32
    public var firstPage: UInt32
    /// The first page *not* read; nil: to the end of the table.
    public var endPage: UInt32?
    /// The chunk's position in its table's plan for this run (0-based), for logs.
    public var ordinal: Int
    /// The pages the chunk is expected to read (for progress; an open end counts the pages the
    /// table had when planned, at least 1).
    public var estimatedPages: Int

    public init(table: String, relationID: UInt32, firstPage: UInt32, endPage: UInt32?, ordinal: Int = 0, estimatedPages: Int = 1) {
        self.table = table
        self.relationID = relationID
        self.firstPage = firstPage
        self.endPage = endPage
        self.ordinal = ordinal
        self.estimatedPages = estimatedPages
    }

    static let openEnd: UInt64 = 0xFFFF_FFFF

    /// The stable identity recorded in the ``StateStore`` (see the type's documentation).
    public var id: Int {
        Int(truncatingIfNeeded: Int64(bitPattern: UInt64(firstPage) << 32 | (endPage.map(UInt64.init) ?? Self.openEnd)))
    }

    /// The page range a chunk id stands for; nil when `id` is not a valid chunk id.
    public static func pageRange(id: Int) -> (first: UInt32, end: UInt32?)? {
        let bits = UInt64(bitPattern: Int64(id))
        let first = UInt32(bits >> 32), end = bits & 0xFFFF_FFFF
        if end == openEnd { return (first, nil) }
        guard UInt32(end) > first else { return nil }
        return (first, UInt32(end))
    }

    /// Whether the chunk is the whole table (no CTID predicate).
    public var isWholeTable: Bool { firstPage == 0 && endPage == nil }

    /// The `WHERE` condition selecting the chunk's rows, nil for the whole table.
    public var ctidPredicate: String? {
        if isWholeTable { return nil }
        var predicate = "ctid >= '(\(firstPage),0)'::tid"
        if let endPage { predicate += " AND ctid < '(\(endPage),0)'::tid" }
        return predicate
    }

    public var description: String {
        "\(table) pages \(firstPage)..<\(endPage.map(String.init) ?? "end")"
    }
}

/// Splits tables into chunks, leaving out the pages that chunks already done cover.
public struct SnapshotChunkPlanner: Sendable {
    public var chunkSize: SnapshotChunkSize

    public init(chunkSize: SnapshotChunkSize = .defaultSize) {
        self.chunkSize = chunkSize
    }

    /// The chunks still to read of `table`, in page order.
    ///
    /// - Parameter done: the ids of chunks already done (``StateStore/doneChunks(pipeline:table:)``).
    ///   A done chunk without end covers every later page: rows that reached those pages after
    ///   it was read were written after the slot's consistent point, so the stream delivers them.
    ///
    /// A table that fits in one chunk (and a partitioned table, whose partitions each have their
    /// own page numbers) is one chunk without a predicate. Gaps between done chunks are read up
    /// to the table's current size only.
    public func plan(_ table: SnapshotTable, done: Set<Int> = []) -> [SnapshotChunk] {
        let perChunk = UInt64(chunkSize.pagesPerChunk(for: table))
        let pages = UInt64(max(0, table.pages))
        let name = table.schema.qualifiedName
        var chunks: [SnapshotChunk] = []
        func add(_ first: UInt64, _ end: UInt64?) {
            let estimate = end.map { Int($0 - first) } ?? Int(max(1, pages > first ? pages - first : 1))
            chunks.append(SnapshotChunk(table: name, relationID: table.schema.relationID, firstPage: UInt32(first),
                                        endPage: end.map { UInt32($0) }, ordinal: chunks.count, estimatedPages: estimate))
        }
        for gap in uncovered(done) {
            if table.kind == .partitioned {
                // One CTID space per partition: read through the root, whole.
                if gap.first == 0 && gap.end == nil { add(0, nil) }
                continue
            }
            var start = gap.first
            if let gapEnd = gap.end {
                // Pages at or past the current size hold no row the snapshot can see that the
                // stream will not deliver (rows put there later were written after the slot's
                // consistent point), so a gap is read only up to the current size.
                let end = min(gapEnd, pages)
                while start < end {
                    let next = min(end, start + perChunk)
                    add(start, next)
                    start = next
                }
            } else {
                // Fixed-size pieces up to the current size; the last one open-ended.
                while start + perChunk < pages {
                    add(start, start + perChunk)
                    start += perChunk
                }
                add(start, nil)
            }
        }
        return chunks
    }

    /// The page ranges of `[0, ∞)` that no done chunk covers, in order.
    func uncovered(_ done: Set<Int>) -> [(first: UInt64, end: UInt64?)] {
        let covered = done.compactMap(SnapshotChunk.pageRange(id:))
            .map { (first: UInt64($0.first), end: $0.end.map(UInt64.init)) }
            .sorted { $0.first < $1.first }
        var gaps: [(first: UInt64, end: UInt64?)] = []
        var position: UInt64 = 0
        for range in covered {
            if range.first > position { gaps.append((position, range.first)) }
            guard let end = range.end else { return gaps }  // covers everything from its start
            position = max(position, end)
        }
        gaps.append((position, nil))
        return gaps
    }
}
