import Glibc

/// Why a file is not a complete 64-bit ELF shared object.
package enum ELFProblem: Error, Equatable, Sendable, CustomStringConvertible {
    case unreadable(errno: Int32)
    case shorterThanHeader
    /// No ELF magic (the name is older than the 32-bit and byte-order
    /// cases, which are ELF files and say what they are built for).
    case notELF64
    case notSharedObject
    /// Built for another processor (`e_machine`), 64-bit little-endian.
    case wrongMachine(found: UInt16)
    /// A 32-bit ELF file (`EI_CLASS` 1), with its `e_machine` read in the
    /// file's own byte order.
    case thirtyTwoBit(machine: UInt16, bigEndian: Bool)
    /// A 64-bit big-endian ELF file (`EI_DATA` 2): every field after the
    /// identification is in the other byte order, so nothing else of it
    /// can be read as this server reads its own.
    case bigEndian(machine: UInt16)
    /// ELF magic, then an `EI_CLASS` or `EI_DATA` that is neither 1 nor 2.
    case unknownFormat(elfClass: UInt8, data: UInt8)
    case corruptSectionHeaders
    case corruptProgramHeaders
    /// The section headers end past the file: a linker writes them last.
    case truncated(size: UInt64, needed: UInt64)
    case truncatedProgramHeaders
    case segmentPastEnd(size: UInt64)

    /// A problem that may go away once a writer finishes (a build still
    /// linking, a copy in progress): the watcher retries these only.
    package var isTransient: Bool {
        switch self {
        case .shorterThanHeader, .truncated, .truncatedProgramHeaders, .segmentPastEnd: true
        default: false
        }
    }

    package var description: String {
        switch self {
        case .unreadable(let code): String(cString: strerror(code))
        case .shorterThanHeader: "file is shorter than an ELF header"
        case .notELF64: "not an ELF file"
        case .notSharedObject: "not a shared object"
        case .wrongMachine(let found):
            "built for \(ELFCheck.machineName(found)), but this server runs on \(ELFCheck.machineName(ELFCheck.nativeMachine))"
        case .thirtyTwoBit(let machine, let bigEndian):
            "built for \(ELFCheck.machineName(machine, bits: 32))\(bigEndian ? " (big-endian)" : "") (a 32-bit ELF file), "
                + "but this server runs on \(ELFCheck.machineName(ELFCheck.nativeMachine))"
        case .bigEndian(let machine):
            "built for \(ELFCheck.machineName(machine)) (big-endian), "
                + "but this server runs on \(ELFCheck.machineName(ELFCheck.nativeMachine)) (little-endian)"
        case .unknownFormat(let elfClass, let data):
            "not a valid ELF file (EI_CLASS \(elfClass), EI_DATA \(data))"
        case .corruptSectionHeaders: "corrupt section header offsets"
        case .corruptProgramHeaders: "corrupt program header offsets"
        case .truncated(let size, let needed): "file is truncated (\(size) of at least \(needed) bytes; still being written?)"
        case .truncatedProgramHeaders: "file is truncated in its program headers"
        case .segmentPastEnd(let size): "file is truncated (a segment ends past the file's \(size) bytes)"
        }
    }
}

/// Checks that a file is a complete 64-bit ELF shared object before it is
/// handed to `dlopen`.
///
/// Why: `dlopen` maps segments with `mmap`, which succeeds even when the
/// file is shorter than its headers say. A module caught half-written (a
/// build still linking, a copy in progress) would load, and the first call
/// into a page past the end of the file would kill the server with SIGBUS.
/// Linkers write the section header table last, so a file whose section
/// headers and loadable segments all lie within its size is complete.
package enum ELFCheck {
    /// nil when the file looks complete; otherwise why not.
    static func problem(path: String) -> ELFProblem? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .unreadable(errno: errno) }
        defer { close(fd) }
        return problem(descriptor: fd)
    }

    /// The same check on an open descriptor (the module file before it is
    /// copied: a file that is not a module for this machine, or is still
    /// being written, is refused before a byte is copied).
    static func problem(descriptor fd: Int32) -> ELFProblem? {
        problem { buffer, offset in
            guard let at = off_t(exactly: offset) else { return 0 }
            return pread(fd, buffer.baseAddress, buffer.count, at)
        } size: {
            var info = stat()
            return fstat(fd, &info) == 0 ? UInt64(info.st_size) : nil
        }
    }

    /// `e_machine` of the processor this server was built for.
    static var nativeMachine: UInt16 {
        #if arch(x86_64)
        UInt16(EM_X86_64)
        #elseif arch(arm64)
        UInt16(EM_AARCH64)
        #else
        0
        #endif
    }

    /// A processor's common name, from its `e_machine` (and the file's
    /// class: 32-bit code for a 64-bit processor is named as such).
    static func machineName(_ machine: UInt16, bits: Int = 64) -> String {
        switch (Int32(machine), bits) {
        case (EM_X86_64, 32): "x86-64 (x32)"
        case (EM_X86_64, _): "x86-64"
        case (EM_AARCH64, 32): "AArch64 (ILP32)"
        case (EM_AARCH64, _): "AArch64 (arm64)"
        case (EM_386, _): "i386"
        case (EM_ARM, _): "32-bit ARM"
        case (EM_RISCV, 32): "32-bit RISC-V"
        case (EM_RISCV, _): "RISC-V"
        case (EM_PPC, _): "PowerPC"
        case (EM_PPC64, _): "PowerPC 64"
        case (EM_S390, 32): "s390"
        case (EM_S390, _): "s390x"
        case (EM_MIPS, _): "MIPS"
        case (EM_SPARCV9, _): "SPARC 64"
        default: "machine \(machine)"
        }
    }

    /// `EI_DATA` of this server's own build: 1 (little-endian) on x86-64
    /// and arm64.
    static var nativeData: UInt8 {
        #if _endian(little)
        1
        #else
        2
        #endif
    }

    /// The check over bytes in memory (what the fuzzer feeds it).
    package static func problem(bytes: UnsafeRawBufferPointer) -> ELFProblem? {
        problem { buffer, offset in
            guard offset < UInt64(bytes.count) else { return 0 }
            let taken = min(buffer.count, bytes.count - Int(offset))
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[Int(offset)..<(Int(offset) + taken)]))
            return taken
        } size: { UInt64(bytes.count) }
    }

    /// `read(buffer, offset)` fills what it can and returns the byte count.
    private static func problem(read: (UnsafeMutableRawBufferPointer, UInt64) -> Int, size: () -> UInt64?) -> ELFProblem? {
        guard let size = size() else { return .unreadable(errno: errno) }
        func load<T>(_ value: inout T, at offset: UInt64) -> Bool {
            withUnsafeMutableBytes(of: &value) { read($0, offset) == $0.count }
        }
        // First the identification and e_machine (the same 20 bytes in
        // every ELF file): class and byte order decide how the rest reads.
        // A 32-bit or big-endian build read as a 64-bit little-endian one
        // gives nonsense sizes, and was refused as "truncated … still being
        // written?", which `--watch` retries for ever; it is refused here,
        // for good, naming what it was built for.
        var start = [UInt8](repeating: 0, count: 20)
        guard start.withUnsafeMutableBytes({ read($0, 0) }) == start.count else { return .shorterThanHeader }
        guard start.prefix(4).elementsEqual([0x7F, 0x45, 0x4C, 0x46]) else { return .notELF64 }
        let (elfClass, data) = (start[Int(EI_CLASS)], start[Int(EI_DATA)])
        guard elfClass == 1 || elfClass == 2, data == 1 || data == 2 else {
            return .unknownFormat(elfClass: elfClass, data: data)
        }
        // e_machine, offset 18 in both classes, in the file's byte order.
        let machine = data == 1 ? UInt16(start[18]) | UInt16(start[19]) << 8 : UInt16(start[18]) << 8 | UInt16(start[19])
        if elfClass == 1 { return .thirtyTwoBit(machine: machine, bigEndian: data == 2) }
        if data != nativeData { return data == 2 ? .bigEndian(machine: machine) : .wrongMachine(found: machine) }

        var header = Elf64_Ehdr()
        guard load(&header, at: 0) else { return .shorterThanHeader }
        guard header.e_type == UInt16(ET_DYN) else { return .notSharedObject }

        // Header values are untrusted: add and multiply without trapping.
        let (table, tableOverflow) = UInt64(header.e_shnum).multipliedReportingOverflow(by: UInt64(header.e_shentsize))
        let (sectionsEnd, endOverflow) = header.e_shoff.addingReportingOverflow(table)
        guard !tableOverflow, !endOverflow else { return .corruptSectionHeaders }
        guard sectionsEnd <= size else { return .truncated(size: size, needed: sectionsEnd) }
        for index in 0..<UInt64(header.e_phnum) {
            var segment = Elf64_Phdr()
            let (step, stepOverflow) = index.multipliedReportingOverflow(by: UInt64(header.e_phentsize))
            let (position, positionOverflow) = header.e_phoff.addingReportingOverflow(step)
            guard !stepOverflow, !positionOverflow, off_t(exactly: position) != nil else { return .corruptProgramHeaders }
            guard load(&segment, at: position) else { return .truncatedProgramHeaders }
            let (end, overflow) = segment.p_offset.addingReportingOverflow(segment.p_filesz)
            if segment.p_type == UInt32(PT_LOAD), overflow || end > size { return .segmentPastEnd(size: size) }
        }
        // Last, once the file is whole (a truncated file's header may be
        // anything): dlopen would say "No such file or directory" here.
        guard nativeMachine == 0 || header.e_machine == nativeMachine else { return .wrongMachine(found: header.e_machine) }
        return nil
    }
}
