/*
 * switch_x86_64_sysv_elf.S - weft's context switch for x86-64, SysV ABI, ELF.
 *
 * A suspended context is a stack pointer.  Below the return address of the
 * call that suspended it, the switch pushes exactly what the SysV ABI says a
 * callee must preserve: RBP, RBX, R12-R15, then a slot for the FP control
 * state (MXCSR and the x87 control word).  frame_x86_64.h gives the layout
 * of that saved frame, and of the first frame of a new stack, by offset;
 * the code below names every offset it uses from there.
 *
 * The layout is the same whether the frame was made by a switch or by
 * weft__ctx_make_asm, so the CFI below is right on either stack, and gdb
 * can unwind through a switch.  The signal mask is not touched: no syscall.
 * The third argument of a switch comes back as the return value of the
 * switch that resumes (RDX -> RAX), or as the first argument of a new
 * context's entry function.
 */

#include "frame_x86_64.h"

/*
 * The pushes and pops below, and make_asm's stores, lay the frame out in
 * one order: stop the build if frame_x86_64.h says otherwise.
 */
	.if WEFT_FRAME_FPCTL != 0 || WEFT_FRAME_MXCSR != WEFT_FRAME_FPCTL || \
	    WEFT_FRAME_X87CW != WEFT_FRAME_FPCTL + 4 || \
	    WEFT_FRAME_R15 != WEFT_FRAME_FPCTL + 8 || \
	    WEFT_FRAME_R14 != WEFT_FRAME_R15 + 8 || \
	    WEFT_FRAME_R13 != WEFT_FRAME_R14 + 8 || \
	    WEFT_FRAME_R12 != WEFT_FRAME_R13 + 8 || \
	    WEFT_FRAME_RBX != WEFT_FRAME_R12 + 8 || \
	    WEFT_FRAME_RBP != WEFT_FRAME_RBX + 8 || \
	    WEFT_FRAME_RET != WEFT_FRAME_RBP + 8 || \
	    WEFT_FRAME_SIZE != WEFT_FRAME_RET + 8
	.error "frame_x86_64.h: the saved frame is not in the order of the pushes"
	.endif
	.if WEFT_FRAME_SIZE % 16 != 0 || WEFT_NEW_END != 8 || \
	    WEFT_NEW_ALIGN != WEFT_NEW_END + 8 || \
	    WEFT_NEW_FRAME != WEFT_NEW_ALIGN + WEFT_FRAME_SIZE
	.error "frame_x86_64.h: the first frame of a new stack is misplaced"
	.endif
	/* The FP control slot is stored before the pushes, in the red zone. */
	.if WEFT_FRAME_RET - WEFT_FRAME_FPCTL > 128
	.error "frame_x86_64.h: the FP control slot is below the red zone"
	.endif

	.text

/*
 * Two entry points share the body below and differ in how they leave.
 *
 * weft__ctx_switch_asm returns with RET.  The return-stack predictor
 * guesses the call site the switch was entered from, and in the runtime
 * nearly every switch between green threads is entered from, and resumes
 * at, the same place (sched.c's switch_from), so the guess is right, and
 * the rest of the return stack stays paired with the calls of the resumed
 * side.  Measured: weft_yield took 21 ns when every switch left by an
 * indirect jump, 9 ns with RET.
 *
 * weft__ctx_jump_asm leaves by pop + indirect jump, for switches whose two
 * sides are known to differ: into a context that has never run (it starts
 * in the trampoline) and out of a finished one.  RET would mispredict
 * there every time; the indirect-branch predictor learns the pattern.
 */
	.macro	SWITCH name, leave
	.globl	\name
	.hidden	\name
	.type	\name, @function
	.p2align 4
\name:
	.cfi_startproc
	/* Store the FP control state first, into the red zone where the
	 * slot will be once the registers are pushed, so that these slow
	 * stores overlap the pushes.  Bytes 6-7 of the slot are padding. */
	stmxcsr	WEFT_FRAME_MXCSR - WEFT_FRAME_RET(%rsp)	/* save MXCSR */
	fnstcw	WEFT_FRAME_X87CW - WEFT_FRAME_RET(%rsp)	/* save x87 CW */
	pushq	%rbp			/* save RBP */
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset rbp, 0
	pushq	%rbx			/* save RBX */
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset rbx, 0
	pushq	%r12			/* save R12 */
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset r12, 0
	pushq	%r13			/* save R13 */
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset r13, 0
	pushq	%r14			/* save R14 */
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset r14, 0
	pushq	%r15			/* save R15 */
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset r15, 0
	/* the FP control slot, filled above */
	leaq	WEFT_FRAME_FPCTL - WEFT_FRAME_R15(%rsp), %rsp
	.cfi_adjust_cfa_offset WEFT_FRAME_R15 - WEFT_FRAME_FPCTL
	movq	%rsp, (%rdi)		/* *from = RSP */
	movq	%rsi, %rsp		/* RSP = to: now on the other stack */
	/*
	 * Load the FP control state unconditionally.  Skipping the loads when
	 * both sides agree needs a compare that reads back the value stmxcsr
	 * just stored; that store does not forward to a load, so the compare
	 * waits for it to commit, and measured on x86-64 (bench/switch) the
	 * skip costs more than the loads it saves: 5.7 ns a switch against
	 * 3.5.
	 *
	 * LDMXCSR is cheap only when it leaves MXCSR as it was.  On Intel
	 * cores it costs about 50 ns when the value changes, even if only in
	 * the status flags (bits 0-5, which the ABI does not preserve across
	 * a call), and the switch reloads them with the rest: two threads
	 * whose flags differ pay that at every switch between them.  The
	 * flag that differs in practice is inexact (PE), which the first
	 * inexact operation of a thread sets, for good (1.0 / 3.0 is one).
	 * So a new context starts with PE set (WEFT_NEW_MXCSR), and so does
	 * every kernel thread of the scheduler (weft__ctx_fp_settle): with
	 * or without arithmetic of their own, threads then agree.  Measured,
	 * weft_yield between a thread that divided once and one that did not:
	 * 32.5 ns with new contexts at PE clear, 7.8 ns as here.
	 */
	ldmxcsr	WEFT_FRAME_MXCSR(%rsp)	/* restore MXCSR */
	fldcw	WEFT_FRAME_X87CW(%rsp)	/* restore x87 control word */
	leaq	WEFT_FRAME_R15(%rsp), %rsp	/* past the FP control slot */
	.cfi_adjust_cfa_offset WEFT_FRAME_FPCTL - WEFT_FRAME_R15
	popq	%r15			/* restore R15 */
	.cfi_adjust_cfa_offset -8
	.cfi_restore r15
	popq	%r14			/* restore R14 */
	.cfi_adjust_cfa_offset -8
	.cfi_restore r14
	popq	%r13			/* restore R13 */
	.cfi_adjust_cfa_offset -8
	.cfi_restore r13
	popq	%r12			/* restore R12 */
	.cfi_adjust_cfa_offset -8
	.cfi_restore r12
	popq	%rbx			/* restore RBX */
	.cfi_adjust_cfa_offset -8
	.cfi_restore rbx
	popq	%rbp			/* restore RBP */
	.cfi_adjust_cfa_offset -8
	.cfi_restore rbp
	movq	%rdx, %rax		/* hand arg to the resumed side */
	.ifc \leave, ret
	ret
	.else
	popq	%rcx
	.cfi_adjust_cfa_offset -8
	.cfi_register rip, rcx
	jmpq	*%rcx
	.endif
	.cfi_endproc
	.size	\name, .-\name
	.endm

/* void *weft__ctx_switch_asm(weft__ctx *from, weft__ctx to, void *arg) */
	SWITCH	weft__ctx_switch_asm, ret
/* void *weft__ctx_jump_asm(weft__ctx *from, weft__ctx to, void *arg) */
	SWITCH	weft__ctx_jump_asm, jmp

/*
 * weft__ctx weft__ctx_make_asm(void *lo, void *hi, weft__ctx_entry entry,
 *                              void *data)
 *
 * Builds, below hi (rounded down to 16), a frame that the switch above
 * restores into the trampoline, with R12 = entry and R13 = data: the first
 * frame of a new stack in frame_x86_64.h.  Its saved frame starts at
 * hi - WEFT_NEW_FRAME, so a slot at offset WEFT_FRAME_X in it is at
 * WEFT_FRAME_X - WEFT_NEW_FRAME from hi.  The RET that resumes it pops
 * the trampoline and leaves RSP = hi - WEFT_NEW_ALIGN, 16-byte aligned.
 */
	.globl	weft__ctx_make_asm
	.hidden	weft__ctx_make_asm
	.type	weft__ctx_make_asm, @function
	.globl	weft__ctx_make_ret_asm
	.hidden	weft__ctx_make_ret_asm
	.type	weft__ctx_make_ret_asm, @function
	.p2align 4
weft__ctx_make_ret_asm:
	.cfi_startproc
	leaq	weft__ctx_trampoline_ret(%rip), %r8
	jmp	1f
weft__ctx_make_asm:
	leaq	weft__ctx_trampoline(%rip), %r8
1:	movq	%rsi, %rax
	andq	$-16, %rax
	/* RAX = hi, rounded down to 16 */
	movq	$0, -WEFT_NEW_END(%rax)		/* 0: end of the frame chain */
	movq	$0, -WEFT_NEW_ALIGN(%rax)	/* 0: RSP in the trampoline */
	/* return address = trampoline */
	movq	%r8, WEFT_FRAME_RET - WEFT_NEW_FRAME(%rax)
	movq	$0, WEFT_FRAME_RBP - WEFT_NEW_FRAME(%rax)	/* RBP = 0 */
	movq	$0, WEFT_FRAME_RBX - WEFT_NEW_FRAME(%rax)	/* RBX = 0 */
	movq	%rdx, WEFT_FRAME_R12 - WEFT_NEW_FRAME(%rax)	/* R12 = entry */
	movq	%rcx, WEFT_FRAME_R13 - WEFT_NEW_FRAME(%rax)	/* R13 = data */
	movq	$0, WEFT_FRAME_R14 - WEFT_NEW_FRAME(%rax)	/* R14 = 0 */
	movq	$0, WEFT_FRAME_R15 - WEFT_NEW_FRAME(%rax)	/* R15 = 0 */
	/* default MXCSR: all masked, round to nearest */
	movl	$WEFT_NEW_MXCSR, WEFT_FRAME_MXCSR - WEFT_NEW_FRAME(%rax)
	/* default x87 CW: all masked, 64-bit, nearest (the 32-bit store
	 * also zeroes the 2 bytes of padding) */
	movl	$WEFT_NEW_X87CW, WEFT_FRAME_X87CW - WEFT_NEW_FRAME(%rax)
	leaq	-WEFT_NEW_FRAME(%rax), %rax	/* the context returned */
	ret
	.cfi_endproc
	.size	weft__ctx_make_asm, .-weft__ctx_make_asm
	.size	weft__ctx_make_ret_asm, .-weft__ctx_make_ret_asm

/* The start of both trampolines below: entry(arg, data), as the outermost
 * frame.  They live in weft_entry_text, with the C code that runs on a
 * green thread's stack only above its function's frames (util.h,
 * WEFT_ENTRY_TEXT): preempt.c takes a return address into them for no
 * sign of weft's code being live. */
	.macro	CALL_ENTRY
	.cfi_undefined rip		/* outermost frame: unwinding stops */
	movq	%rax, %rdi		/* arg of the switch that started us */
	movq	%r13, %rsi		/* data */
	xorl	%ebp, %ebp
	callq	*%r12
	.endm

/*
 * First code run on a new stack.  RSP is 16-byte aligned here, so the call
 * below enters entry with (RSP + 8) % 16 == 0, as the ABI requires.
 * entry(arg, data) must never return: if it does, trap.
 */
	.pushsection weft_entry_text, "ax", @progbits
	.type	weft__ctx_trampoline, @function
	.p2align 4
weft__ctx_trampoline:
	.cfi_startproc
	CALL_ENTRY
	ud2				/* entry returned: a bug */
	.cfi_endproc
	.size	weft__ctx_trampoline, .-weft__ctx_trampoline

/*
 * The same for weft__ctx_make_ret_asm: entry returns the context to resume
 * and the arg to hand it (RAX, RDX: a struct of two pointers), and this
 * stack is left for good.  Resuming from here, after a RET that matched
 * the CALL, leaves the return-stack predictor as it was when this context
 * started: when a thread starts and finishes between one switch of its
 * spawner and the next, the spawner's return is predicted.  (A finished
 * thread that switched out from inside its frames would leave their calls
 * on the predictor, and the resumed side's returns would mispredict until
 * they were used up.)  RAX = 0 is a bug: trap.
 */
	.type	weft__ctx_trampoline_ret, @function
	.p2align 4
weft__ctx_trampoline_ret:
	.cfi_startproc
	CALL_ENTRY
	testq	%rax, %rax
	jz	1f
	/* Restore as the switch does. */
	movq	%rax, %rsp		/* RSP = to: now on the resumed stack */
	ldmxcsr	WEFT_FRAME_MXCSR(%rsp)	/* restore MXCSR */
	fldcw	WEFT_FRAME_X87CW(%rsp)	/* restore x87 control word */
	leaq	WEFT_FRAME_R15(%rsp), %rsp	/* past the FP control slot */
	popq	%r15			/* restore R15 */
	popq	%r14			/* restore R14 */
	popq	%r13			/* restore R13 */
	popq	%r12			/* restore R12 */
	popq	%rbx			/* restore RBX */
	popq	%rbp			/* restore RBP */
	movq	%rdx, %rax		/* hand arg to the resumed side */
	ret				/* to the return address */
1:	ud2
	.cfi_endproc
	.size	weft__ctx_trampoline_ret, .-weft__ctx_trampoline_ret
	.popsection

	.section .note.GNU-stack,"",%progbits
