import Glibc

/// CPU seconds (user + system) of this process and of another (the server,
/// `--server-pid`): the tool and the server share the machine's cores, so
/// a run reports both next to its latencies.
enum CPUTime {
    /// This process's user + system CPU seconds so far.
    static func ofThisProcess() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    /// Another process's user + system CPU seconds, from /proc/PID/stat
    /// (fields 14 and 15, in clock ticks); 0 when it cannot be read.
    static func ofProcess(_ pid: Int32) -> Double {
        let fd = open("/proc/\(pid)/stat", O_RDONLY)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 1024)
        let count = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return 0 }
        // The command name may hold spaces: fields are counted after ")".
        let text = String(decoding: bytes[0..<count], as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
