/*
 * frame_x86_64.h - the frames of the x86-64 context switch, by offset.
 *
 * One list of offsets for everything that reads or writes a suspended
 * context of the assembly back end: switch_x86_64_sysv_elf.S, which saves,
 * restores and builds the frames, and the gdb extension, whose "weft bt"
 * reads a parked green thread's registers out of its frame.  The build
 * makes tools/weft-gdb.py from tools/weft-gdb.py.in, where each @NAME@
 * becomes the value of NAME here (tools/Makefile.mk).
 *
 * Preprocessor only, so that the .S file can include it, and every value
 * is a plain hexadecimal number on its #define line, which is how the
 * build of the gdb extension reads it.  The .S file checks, as it
 * assembles, that the offsets agree with the order of its pushes.
 */
#ifndef WEFT_FRAME_X86_64_H
#define WEFT_FRAME_X86_64_H

/*
 * The saved frame, by offset from the saved stack pointer (the context):
 *
 *   offset  contents
 *   ------  -----------------------------------------------------------
 *    0x00   FP control slot, 8 bytes:
 *    0x00     MXCSR (32 bits: control and status; the status flags ride
 *             along, harmlessly)
 *    0x04     x87 FPU control word (16 bits), 2 bytes of padding (ignored)
 *    0x08   R15
 *    0x10   R14
 *    0x18   R13
 *    0x20   R12
 *    0x28   RBX
 *    0x30   RBP
 *    0x38   return address (RIP to resume at)
 *    0x40   end of the frame: RSP once the context has resumed
 */
#define WEFT_FRAME_FPCTL 0x00 /* the FP control slot */
#define WEFT_FRAME_MXCSR 0x00 /* MXCSR, 32 bits */
#define WEFT_FRAME_X87CW 0x04 /* x87 control word, 16 bits */
#define WEFT_FRAME_R15 0x08
#define WEFT_FRAME_R14 0x10
#define WEFT_FRAME_R13 0x18
#define WEFT_FRAME_R12 0x20
#define WEFT_FRAME_RBX 0x28
#define WEFT_FRAME_RBP 0x30
#define WEFT_FRAME_RET 0x38  /* return address */
#define WEFT_FRAME_SIZE 0x40 /* bytes in the frame */

/*
 * The first frame of a new stack, which weft__ctx_make_asm builds below hi
 * (the top of the stack, rounded down to 16), by distance below hi:
 *
 *   hi-0x08  0            (end of the frame chain)
 *   hi-0x10  0            (RSP once the trampoline starts: 16-byte aligned)
 *   hi-0x50  a saved frame, WEFT_FRAME_SIZE bytes up to hi-0x10, which
 *            resumes in the trampoline with R12 = entry, R13 = data, the
 *            other registers 0 and the default FP control state below:
 *            the context returned
 */
#define WEFT_NEW_END 0x08     /* 0: the end of the frame chain */
#define WEFT_NEW_ALIGN 0x10   /* 0: where the trampoline starts */
#define WEFT_NEW_FRAME 0x50   /* the saved frame: the new context */
/* All exceptions masked, round to nearest, and the inexact flag set (see
 * the switch in the .S file: it is what a thread that has done any
 * floating-point arithmetic has, so reloading it changes nothing). */
#define WEFT_NEW_MXCSR 0x1fa0
#define WEFT_NEW_X87CW 0x037f /* all masked, 64-bit precision, nearest */

#endif /* WEFT_FRAME_X86_64_H */
