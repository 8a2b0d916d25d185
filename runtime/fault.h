/*
 * fault.h - crashes inside green threads, reported by name.
 *
 * Every worker's kernel thread runs with a sigaltstack, so a green thread
 * that runs into its guard can still be reported: the SIGSEGV handler
 * looks the fault address up in the running green thread's guard range
 * (the guard its stack was made with, g->guard: 1 MiB by default) and
 * prints
 *   weft: green thread 42 "conn-17" overflowed its 64 KiB stack
 * before aborting.  Any other fatal signal inside a green thread is
 * reported with the thread's id and name, then delivered with its default
 * action (so the process dies of that signal, with a core if enabled).
 * Faults outside green threads go to the handler that was installed before
 * weft's, or to the default action.
 */
#ifndef WEFT_FAULT_H
#define WEFT_FAULT_H

struct weft__kt;

int weft__fault_setup(void);
void weft__fault_thread_init(struct weft__kt *kt);
void weft__fault_thread_fini(struct weft__kt *kt);

#endif /* WEFT_FAULT_H */
