/*
 * pause: the process of a pod's sandbox ("infra") container in the local cluster.
 *
 * The kubelet (through containerd's CRI plugin) starts one sandbox container per pod; it holds the
 * pod's network namespace and does nothing else. Upstream's image is registry.k8s.io/pause,
 * which this machine cannot pull (no registry), so images.sh builds this equivalent from source:
 *   gcc -static -O2 -o pause pause.c
 * (static, so the image needs no libc or loader: /pause is its only file).
 *
 * Behaviour, as upstream's pause:
 *   - blocks until SIGINT or SIGTERM, then exits 0 (a stopped sandbox is not a failure);
 *   - reaps zombie children on SIGCHLD, for pods that share the PID namespace, where it is PID 1
 *     and inherits every orphaned process;
 *   - `pause -v` prints its version and exits 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAUSE_VERSION "proglog-pause 3.10"

static void on_shutdown(int sig) {
    /* Only async-signal-safe calls here: write(2) and _exit(2). */
    static const char msg[] = "pause: shutting down\n";
    (void)sig;
    (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
    _exit(0);
}

static void on_child(int sig) {
    int saved = errno;
    (void)sig;
    /* Several children can exit while one SIGCHLD is pending: reap them all. */
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    errno = saved;
}

static void install(int sig, void (*handler)(int), int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) < 0) {
        perror("pause: sigaction");
        exit(1);
    }
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-v") == 0) {
            printf("%s\n", PAUSE_VERSION);
            return 0;
        }
        fprintf(stderr, "usage: %s [-v]\n  blocks until SIGINT or SIGTERM, reaping children\n", argv[0]);
        return 2;
    }
    if (getpid() != 1) {
        /* Still useful (e.g. for testing), but it only reaps its own children then. */
        fprintf(stderr, "pause: warning: not PID 1, orphaned processes are not reaped here\n");
    }

    install(SIGINT, on_shutdown, 0);
    install(SIGTERM, on_shutdown, 0);
    install(SIGCHLD, on_child, SA_NOCLDSTOP | SA_RESTART);

    for (;;) {
        pause();
    }
    /* Not reached. */
    return 1;
}
