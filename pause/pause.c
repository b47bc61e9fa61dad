/*
 * podvisor pause: the process of a pod's infra container (DESIGN.md §6).
 *
 * Holds the pod's namespaces open and does nothing else: sleeps in
 * sigsuspend() until SIGTERM or SIGINT arrives, then exits 0. It is usually
 * PID 1 of the pod's PID namespace, so it also reaps any zombie children that
 * are reparented to it. No busy loop: the process only wakes up for signals.
 *
 * Build: gcc -static -Os -s -o pause pause.c  (scripts/build-images.sh does).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void reap(void)
{
	int saved = errno;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	errno = saved;
}

static void on_child(int sig)
{
	(void)sig;
	reap();
}

static int handle(int sig, void (*fn)(int), int flags)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = fn;
	sa.sa_flags = flags;
	sigfillset(&sa.sa_mask);
	return sigaction(sig, &sa, NULL);
}

int main(int argc, char **argv)
{
	static const char version[] = "podvisor-pause 1\n";
	sigset_t blocked, waitmask;

	if (argc > 1 && (strcmp(argv[1], "-v") == 0 || strcmp(argv[1], "--version") == 0)) {
		(void)!write(STDOUT_FILENO, version, sizeof version - 1);
		return 0;
	}

	/* Block the signals we wait for, so none can slip in between the
	 * stop_requested check and sigsuspend(). */
	sigemptyset(&blocked);
	sigaddset(&blocked, SIGTERM);
	sigaddset(&blocked, SIGINT);
	sigaddset(&blocked, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &blocked, NULL) != 0)
		return 1;

	if (handle(SIGTERM, on_stop, 0) != 0 || handle(SIGINT, on_stop, 0) != 0 ||
	    handle(SIGCHLD, on_child, SA_NOCLDSTOP | SA_RESTART) != 0)
		return 1;

	/* Children may already have exited before the handler was installed. */
	reap();

	sigemptyset(&waitmask);
	while (!stop_requested)
		sigsuspend(&waitmask);
	return 0;
}
