#include <spawn.h>
// glibc declares this only under _GNU_SOURCE (glibc 2.29 and later).
extern int posix_spawn_file_actions_addchdir_np(posix_spawn_file_actions_t *__restrict actions, const char *__restrict path);
// Also _GNU_SOURCE-only: a pipe created with flags (O_CLOEXEC) in one call.
extern int pipe2(int pipefd[2], int flags);
#include <stdio.h>
// Standard output flushed at every newline (Swift cannot name glibc's `stdout` safely).
static inline void shoal_line_buffer_stdout(void) { setvbuf(stdout, NULL, _IOLBF, 0); }
