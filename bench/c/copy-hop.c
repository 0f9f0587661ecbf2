/*
 * copy-hop: the cheapest userspace hop there is, for the VM throughput bench's reference.
 * Usage: copy-hop CMD [ARGS...]
 * Runs CMD with fd 0 and fd 1 on one end of a new Unix socketpair and copies bytes between
 * our fd 0 (read) / fd 1 (write) and the other end, one blocking thread per direction with a
 * 1 MiB buffer: no parsing, no event loop. EOF is passed on with shutdown(SHUT_WR). Exits with
 * CMD's status once CMD has exited (a direction still copying then is abandoned).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

struct dir { int from, to; };

static void *copy(void *arg) {
  struct dir *d = arg;
  enum { SIZE = 1 << 20 };
  char *buf = malloc(SIZE);
  if (buf == NULL) return NULL;
  for (;;) {
    ssize_t n = read(d->from, buf, SIZE);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(d->to, buf + off, (size_t)(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return NULL;
      off += w;
    }
  }
  shutdown(d->to, SHUT_WR);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: copy-hop CMD [ARGS...]\n");
    return 64;
  }
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
    perror("copy-hop: socketpair");
    return 1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    perror("copy-hop: fork");
    return 1;
  }
  if (pid == 0) {
    dup2(sv[1], 0);
    dup2(sv[1], 1);
    close(sv[0]);
    close(sv[1]);
    execvp(argv[1], argv + 1);
    perror("copy-hop: exec");
    _exit(127);
  }
  close(sv[1]);
  static struct dir in = {0, 0}, out = {0, 1};
  in.to = sv[0];
  out.from = sv[0];
  pthread_t a, b;
  pthread_create(&a, NULL, copy, &in);
  pthread_create(&b, NULL, copy, &out);
  pthread_detach(a);
  pthread_detach(b);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
