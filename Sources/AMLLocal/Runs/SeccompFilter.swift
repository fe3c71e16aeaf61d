import Foundation

/// The seccomp program every confined run and scoring process meets (bubblewrap loads it with `--seccomp`, after
/// `no_new_privs`, just before it starts the script): system calls that reach past the sandbox, or that no training
/// or scoring script needs and the kernel has been attacked through, fail with `EPERM`.
///
/// Dropping every capability already refuses most of these; the filter is the second wall, and the one that holds if
/// a capability were kept by mistake: `open_by_handle_at` with `CAP_DAC_READ_SEARCH` opens the host's `/` from a
/// bind-mounted run folder (reproduced as root before this filter and `--cap-drop ALL`).
///
/// A classic BPF program over `seccomp_data`: a foreign architecture (i386 calls through `int 0x80` on x86_64, whose
/// numbers differ) and x32 calls are refused whole, `clone` may not create namespaces, `clone3` answers `ENOSYS` (its
/// flags live in memory a filter cannot read; the C library then falls back to `clone`), and the list below is
/// refused. Everything else is allowed.
package enum SeccompFilter {
    /// One BPF instruction, as `struct sock_filter` lays it out (8 bytes, native byte order).
    package struct Instruction: Equatable {
        package let code: UInt16, jt: UInt8, jf: UInt8, k: UInt32
    }

    /// The system calls refused, by name (the names tests and the README use).
    package static let refused = [
        "open_by_handle_at", "name_to_handle_at", "mount", "umount2", "pivot_root", "chroot", "mount_setattr", "move_mount",
        "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "unshare", "setns", "ptrace", "process_vm_readv", "process_vm_writev",
        "kcmp", "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key", "kexec_load", "kexec_file_load",
        "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff", "acct", "quotactl", "syslog", "vhangup",
        "lookup_dcookie", "fanotify_init", "sethostname", "setdomainname", "settimeofday", "clock_settime", "clock_adjtime",
        "adjtimex", "io_uring_setup", "io_uring_enter", "io_uring_register", "iopl", "ioperm",
    ]

    /// An architecture's audit value and system call numbers (from its `unistd` headers).
    package struct Architecture: Sendable {
        package let audit: UInt32
        package let numbers: [String: UInt32]
        package let clone: UInt32
        package let clone3: UInt32
        /// x86_64's x32 calls carry this bit and reach the same kernel code under other numbers.
        let x32Bit: UInt32?
    }

    package static let x86_64 = Architecture(audit: 0xC000_003E, numbers: [
        "open_by_handle_at": 304, "name_to_handle_at": 303, "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
        "mount_setattr": 442, "move_mount": 429, "open_tree": 428, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
        "unshare": 272, "setns": 308, "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312, "bpf": 321,
        "perf_event_open": 298, "userfaultfd": 323, "keyctl": 250, "add_key": 248, "request_key": 249, "kexec_load": 246,
        "kexec_file_load": 320, "init_module": 175, "finit_module": 313, "delete_module": 176, "reboot": 169, "swapon": 167,
        "swapoff": 168, "acct": 163, "quotactl": 179, "syslog": 103, "vhangup": 153, "lookup_dcookie": 212, "fanotify_init": 300,
        "sethostname": 170, "setdomainname": 171, "settimeofday": 164, "clock_settime": 227, "clock_adjtime": 305, "adjtimex": 159,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "iopl": 172, "ioperm": 173,
    ], clone: 56, clone3: 435, x32Bit: 0x4000_0000)

    package static let aarch64 = Architecture(audit: 0xC000_00B7, numbers: [
        "open_by_handle_at": 265, "name_to_handle_at": 264, "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51,
        "mount_setattr": 442, "move_mount": 429, "open_tree": 428, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
        "unshare": 97, "setns": 268, "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "kcmp": 272, "bpf": 280,
        "perf_event_open": 241, "userfaultfd": 282, "keyctl": 219, "add_key": 217, "request_key": 218, "kexec_load": 104,
        "kexec_file_load": 294, "init_module": 105, "finit_module": 273, "delete_module": 106, "reboot": 142, "swapon": 224,
        "swapoff": 225, "acct": 89, "quotactl": 60, "syslog": 116, "vhangup": 58, "lookup_dcookie": 18, "fanotify_init": 262,
        "sethostname": 161, "setdomainname": 162, "settimeofday": 170, "clock_settime": 112, "clock_adjtime": 266, "adjtimex": 171,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    ], clone: 220, clone3: 435, x32Bit: nil)

    /// The machine's architecture, or nil where mlhook has no table (runs are then refused when confinement is required).
    static var native: Architecture? {
        #if arch(x86_64)
        return x86_64
        #elseif arch(arm64)
        return aarch64
        #else
        return nil
        #endif
    }

    // BPF opcodes (linux/filter.h, linux/seccomp.h).
    private static let loadWord: UInt16 = 0x20  // BPF_LD | BPF_W | BPF_ABS
    private static let jumpEqual: UInt16 = 0x15  // BPF_JMP | BPF_JEQ | BPF_K
    private static let jumpAtLeast: UInt16 = 0x35  // BPF_JMP | BPF_JGE | BPF_K
    private static let jumpAnyBit: UInt16 = 0x45  // BPF_JMP | BPF_JSET | BPF_K
    private static let ret: UInt16 = 0x06  // BPF_RET | BPF_K
    static let allow: UInt32 = 0x7FFF_0000
    static let errno: UInt32 = 0x0005_0000
    /// CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET.
    static let namespaceFlags: UInt32 = 0x7E02_0000

    /// The program for `architecture`, as instructions.
    package static func instructions(for architecture: Architecture) -> [Instruction] {
        enum Target { case none, refuse, noSystemCall, cloneFlags }
        // The checks after the architecture's, with where a match jumps; laid out after them: allow, EPERM, ENOSYS,
        // then clone's flags check.
        var checks: [(code: UInt16, k: UInt32, target: Target)] = [(loadWord, 0, .none)]  // seccomp_data.nr
        if let bit = architecture.x32Bit { checks.append((jumpAtLeast, bit, .refuse)) }
        checks.append((jumpEqual, architecture.clone, .cloneFlags))
        checks.append((jumpEqual, architecture.clone3, .noSystemCall))
        for name in refused { if let number = architecture.numbers[name] { checks.append((jumpEqual, number, .refuse)) } }
        let first = 3, allowAt = first + checks.count
        let refuseAt = allowAt + 1, noSystemCallAt = allowAt + 2, cloneFlagsAt = allowAt + 3
        var program = [
            Instruction(code: loadWord, jt: 0, jf: 0, k: 4),  // seccomp_data.arch
            Instruction(code: jumpEqual, jt: 1, jf: 0, k: architecture.audit),
            Instruction(code: ret, jt: 0, jf: 0, k: errno | UInt32(EPERM)),  // a foreign architecture
        ]
        for check in checks {
            let target: Int? = switch check.target {
            case .none: nil
            case .refuse: refuseAt
            case .noSystemCall: noSystemCallAt
            case .cloneFlags: cloneFlagsAt
            }
            let jump = target.map { UInt8($0 - program.count - 1) } ?? 0
            program.append(Instruction(code: check.code, jt: jump, jf: 0, k: check.k))
        }
        program.append(Instruction(code: ret, jt: 0, jf: 0, k: allow))
        program.append(Instruction(code: ret, jt: 0, jf: 0, k: errno | UInt32(EPERM)))
        program.append(Instruction(code: ret, jt: 0, jf: 0, k: errno | UInt32(ENOSYS)))
        // clone's flags are its first argument (seccomp_data.args[0], its low word at offset 16 on little-endian machines).
        program.append(Instruction(code: loadWord, jt: 0, jf: 0, k: 16))
        program.append(Instruction(code: jumpAnyBit, jt: 1, jf: 0, k: namespaceFlags))
        program.append(Instruction(code: ret, jt: 0, jf: 0, k: allow))
        program.append(Instruction(code: ret, jt: 0, jf: 0, k: errno | UInt32(EPERM)))
        return program
    }

    /// The native architecture's program, made once (every run and scoring process passes it to bubblewrap).
    static let nativeProgram: [UInt8]? = native.map { bytes(for: $0) }

    /// The program as bytes for bubblewrap's `--seccomp FD` (an array of `struct sock_filter`).
    static func bytes(for architecture: Architecture) -> [UInt8] {
        var out: [UInt8] = []
        for i in instructions(for: architecture) {
            withUnsafeBytes(of: i.code) { out += $0 }
            out += [i.jt, i.jf]
            withUnsafeBytes(of: i.k) { out += $0 }
        }
        return out
    }
}
