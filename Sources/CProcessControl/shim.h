// prctl(2) is variadic, which Swift cannot call: fixed-argument wrappers.
#include <sys/prctl.h>

/// Makes the calling process undumpable: its /proc/<pid>/environ, mem and fds are then readable only by root
/// (CAP_SYS_PTRACE), not by other processes of the same user, such as the scripts it runs.
static inline int mlhook_set_undumpable(void) { return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); }

/// Whether the calling process is dumpable (1) or not (0).
static inline int mlhook_is_dumpable(void) { return prctl(PR_GET_DUMPABLE, 0, 0, 0, 0); }

#include <stdio.h>
/// Standard output written line by line even when it is a pipe or a file (stdio buffers it in blocks there).
static inline void mlhook_line_buffer_stdout(void) { setvbuf(stdout, NULL, _IOLBF, 0); }
