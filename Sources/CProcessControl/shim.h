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

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
// glibc declares these only under _GNU_SOURCE, which Swift's view of the C library is not built with
// (closefrom since glibc 2.34, chdir since 2.29; Debian 12 has 2.36).
extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);
extern int posix_spawn_file_actions_addchdir_np(posix_spawn_file_actions_t *actions, const char *path);

/// Starts `path` with `argv` and `envp`, as the leader of a new process group, with descriptors 0, 1 and 2 made
/// from `fds` (-1: /dev/null) and every other descriptor closed, default signal dispositions and an empty signal
/// mask, in `directory` (NULL: ours). Returns 0 and sets `*pid`, or an errno value (the exec's own failure too).
///
/// Foundation's Process does the closing by listing /proc/self/fd in the parent and adding one close action per
/// open descriptor; its listing copies each entry's whole 256-byte name buffer, which reads past the end of
/// readdir's buffer once ~1,360 descriptors fill it (a crash seen in the test process), and a spawn costs one
/// action per open descriptor. closefrom does it in the child, at once.
static inline int mlhook_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[], const char *directory,
                               int in_fd, int out_fd, int err_fd) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) return rc;
    rc = posix_spawnattr_init(&attributes);
    if (rc != 0) { posix_spawn_file_actions_destroy(&actions); return rc; }
    const int fds[3] = { in_fd, out_fd, err_fd };
    for (int i = 0; i < 3 && rc == 0; i++) {
        rc = fds[i] < 0 ? posix_spawn_file_actions_addopen(&actions, i, "/dev/null", i == 0 ? O_RDONLY : O_WRONLY, 0)
                        : posix_spawn_file_actions_adddup2(&actions, fds[i], i);
    }
    if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    if (rc == 0 && directory != NULL) rc = posix_spawn_file_actions_addchdir_np(&actions, directory);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    if (rc == 0) rc = posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    if (rc == 0) rc = posix_spawnattr_setpgroup(&attributes, 0);
    if (rc == 0) rc = posix_spawnattr_setsigmask(&attributes, &none);
    if (rc == 0) rc = posix_spawnattr_setsigdefault(&attributes, &all);
    if (rc == 0) rc = posix_spawn(pid, path, &actions, &attributes, argv, envp);
    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    return rc;
}
