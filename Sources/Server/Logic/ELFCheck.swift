import Glibc

/// Checks that a file is a complete 64-bit ELF shared object before it is
/// handed to `dlopen`.
///
/// Why: `dlopen` maps segments with `mmap`, which succeeds even when the
/// file is shorter than its headers say. A module caught half-written (a
/// build still linking, a copy in progress) would load, and the first call
/// into a page past the end of the file would kill the server with SIGBUS.
/// Linkers write the section header table last, so a file whose section
/// headers and loadable segments all lie within its size is complete.
enum ELFCheck {
    /// nil when the file looks complete; otherwise why not. Reasons that
    /// start with "file is truncated" may go away once a writer finishes.
    static func problem(path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return String(cString: strerror(errno)) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return String(cString: strerror(errno)) }
        let size = UInt64(info.st_size)

        var header = Elf64_Ehdr()
        guard pread(fd, &header, MemoryLayout<Elf64_Ehdr>.size, 0) == MemoryLayout<Elf64_Ehdr>.size else {
            return "file is shorter than an ELF header"
        }
        let magic = withUnsafeBytes(of: header.e_ident) { Array($0.prefix(5)) }
        guard magic == [0x7F, 0x45, 0x4C, 0x46, 2] else { return "not a 64-bit ELF file" }
        guard header.e_type == UInt16(ET_DYN) else { return "not a shared object" }

        // Header values are untrusted: add and multiply without trapping.
        let (table, tableOverflow) = UInt64(header.e_shnum).multipliedReportingOverflow(by: UInt64(header.e_shentsize))
        let (sectionsEnd, endOverflow) = header.e_shoff.addingReportingOverflow(table)
        guard !tableOverflow, !endOverflow else { return "corrupt section header offsets" }
        guard sectionsEnd <= size else {
            return "file is truncated (\(size) of at least \(sectionsEnd) bytes; still being written?)"
        }
        for index in 0..<UInt64(header.e_phnum) {
            var segment = Elf64_Phdr()
            let (step, stepOverflow) = index.multipliedReportingOverflow(by: UInt64(header.e_phentsize))
            let (position, positionOverflow) = header.e_phoff.addingReportingOverflow(step)
            guard !stepOverflow, !positionOverflow, let offset = off_t(exactly: position) else {
                return "corrupt program header offsets"
            }
            guard pread(fd, &segment, MemoryLayout<Elf64_Phdr>.size, offset) == MemoryLayout<Elf64_Phdr>.size else {
                return "file is truncated in its program headers"
            }
            let (end, overflow) = segment.p_offset.addingReportingOverflow(segment.p_filesz)
            if segment.p_type == UInt32(PT_LOAD), overflow || end > size {
                return "file is truncated (a segment ends past the file's \(size) bytes)"
            }
        }
        return nil
    }
}
