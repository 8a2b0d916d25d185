# demos/Makefile-shm.mk - demos of the shared heap.
#
# shared_list: one worker process builds a linked list in the shared heap
# and sends its head through a process channel; another walks it by
# pointer and frees it (the frees go back to the owner).

noinst_PROGRAMS += demos/shared_list
demos_shared_list_SOURCES = demos/shared_list.c
demos_shared_list_CPPFLAGS = $(demos_cppflags)
demos_shared_list_LDADD = libweft.la $(JEMALLOC_LIBS)
