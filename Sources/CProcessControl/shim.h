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

#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/wait.h>
extern void closefrom(int lowfd);
extern int pipe2(int pipefd[2], int flags);
extern int dup3(int oldfd, int newfd, int flags);

/// Starts `path` confined by the kernel before it runs a single instruction of its own: the child joins each
/// cgroup whose `cgroup.procs` is open in `cgroup_fds` (so every process it ever starts is counted there), takes the
/// resource limits `resources`/`values` (soft and hard), gets descriptors 0-2 from `in_fd`/`out_fd`/`err_fd` (-1:
/// /dev/null) and `pass_fd` as descriptor 3 (-1: none), every other descriptor closed, default signal dispositions,
/// an empty mask, a process group of its own, and `directory` (NULL: ours). Returns 0 and sets `*pid`, or the errno
/// of the first step that failed (joining a cgroup, a limit, the exec itself).
///
/// posix_spawn cannot set limits or cgroups, and setting them from the parent after the spawn races the child: a
/// process it forks first would escape them. Between fork and exec the child makes only system calls
/// (async-signal-safe), never malloc, so forking a multi-threaded parent is safe.
static inline int mlhook_spawn_confined(pid_t *pid, const char *path, char *const argv[], char *const envp[], const char *directory,
                                        int in_fd, int out_fd, int err_fd, int pass_fd,
                                        const int *resources, const unsigned long long *values, int limit_count,
                                        const int *cgroup_fds, int cgroup_count) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) return errno;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);  // no handler of ours may run in the child
    pid_t child = fork();
    if (child == 0) {
        int failure = 0;
        setpgid(0, 0);
        for (int i = 0; i < cgroup_count && failure == 0; i++) {
            if (write(cgroup_fds[i], "0", 1) != 1) failure = errno;  // "0": the writing process itself
        }
        for (int i = 0; i < limit_count && failure == 0; i++) {
            struct rlimit limit = { (rlim_t)values[i], (rlim_t)values[i] };
            if (setrlimit(resources[i], &limit) != 0) failure = errno;
        }
        // Lift the sources above 9 first, so placing one at 0-3 cannot overwrite another still to be placed.
        int sources[4] = { in_fd, out_fd, err_fd, pass_fd };
        for (int i = 0; i < 4 && failure == 0; i++) {
            if (sources[i] >= 0 && (sources[i] = fcntl(sources[i], F_DUPFD_CLOEXEC, 10)) < 0) failure = errno;
        }
        int reporter = fcntl(report[1], F_DUPFD_CLOEXEC, 10);
        for (int i = 0; i < 3 && failure == 0; i++) {
            if (sources[i] >= 0) {
                if (dup2(sources[i], i) < 0) failure = errno;
            } else {
                int null = open("/dev/null", i == 0 ? O_RDONLY : O_WRONLY);
                if (null < 0 || (null != i && dup2(null, i) < 0)) failure = errno;
                if (null > 2) close(null);
            }
        }
        int keep = 3;
        if (failure == 0 && pass_fd >= 0) {
            if (dup2(sources[3], 3) < 0) failure = errno;
            keep = 4;
        }
        if (reporter >= 0 && dup3(reporter, keep, O_CLOEXEC) >= 0) reporter = keep;
        closefrom(reporter == keep ? keep + 1 : keep);
        struct sigaction standard;
        memset(&standard, 0, sizeof standard);
        standard.sa_handler = SIG_DFL;
        for (int s = 1; s < NSIG; s++) sigaction(s, &standard, NULL);
        if (failure == 0 && directory != NULL && chdir(directory) != 0) failure = errno;
        sigset_t none;
        sigemptyset(&none);
        pthread_sigmask(SIG_SETMASK, &none, NULL);
        if (failure == 0) {
            execve(path, argv, envp);
            failure = errno;
        }
        if (write(reporter, &failure, sizeof failure) < 0) {}
        _exit(127);
    }
    int saved = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(report[1]);
    if (child < 0) { close(report[0]); return saved; }
    int failure = 0;
    ssize_t got;
    do { got = read(report[0], &failure, sizeof failure); } while (got < 0 && errno == EINTR);
    close(report[0]);
    if (got == sizeof failure) {
        int status;
        while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
        return failure;
    }
    *pid = child;
    return 0;
}

/// The resource numbers Swift does not import (glibc defines them through an enum and macros over it).
static const int mlhook_rlimit_nproc = RLIMIT_NPROC;
static const int mlhook_rlimit_fsize = RLIMIT_FSIZE;
static const int mlhook_rlimit_core = RLIMIT_CORE;
static const int mlhook_rlimit_as = RLIMIT_AS;
