/*
 * switch_x86_64_sysv_elf.S - weft's context switch for x86-64, SysV ABI, ELF.
 *
 * A suspended context is a stack pointer.  Below the return address of the
 * call that suspended it, the switch pushes exactly what the SysV ABI says a
 * callee must preserve.  The saved frame, at the saved stack pointer:
 *
 *   offset  contents
 *   ------  -----------------------------------------------------------
 *    0x00   MXCSR (32 bits: control and status; the status flags ride
 *           along, harmlessly)
 *    0x04   x87 FPU control word (16 bits), 2 bytes of padding (ignored)
 *    0x08   R15
 *    0x10   R14
 *    0x18   R13
 *    0x20   R12
 *    0x28   RBX
 *    0x30   RBP
 *    0x38   return address (RIP to resume at)
 *
 * The layout is the same whether the frame was made by a switch or by
 * weft__ctx_make_asm, so the CFI below is right on either stack, and gdb
 * can unwind through a switch.  The signal mask is not touched: no syscall.
 * The third argument of a switch comes back as the return value of the
 * switch that resumes (RDX -> RAX), or as the first argument of a new
 * context's entry function.
 */

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
	stmxcsr	-0x38(%rsp)		/* save MXCSR */
	fnstcw	-0x34(%rsp)		/* save x87 control word */
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
	leaq	-8(%rsp), %rsp		/* the FP control slot, filled above */
	.cfi_adjust_cfa_offset 8
	movq	%rsp, (%rdi)		/* *from = RSP */
	movq	%rsi, %rsp		/* RSP = to: now on the other stack */
	/*
	 * Load the FP control state unconditionally.  Skipping the loads when
	 * both sides agree needs a compare that reads back the value stmxcsr
	 * just stored; that store does not forward to a load, so the compare
	 * waits for it to commit, and measured on x86-64 (bench/switch) the
	 * skip costs more than the loads it saves.
	 */
	ldmxcsr	(%rsp)			/* restore MXCSR */
	fldcw	4(%rsp)			/* restore x87 control word */
	leaq	8(%rsp), %rsp
	.cfi_adjust_cfa_offset -8
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
 * restores into the trampoline, with R12 = entry and R13 = data:
 *
 *   hi-0x08  0            (end of the frame chain)
 *   hi-0x10  0
 *   hi-0x18  trampoline   (popped by RET: RSP = hi-0x10, 16-byte aligned)
 *   hi-0x20  RBP = 0
 *   hi-0x28  RBX = 0
 *   hi-0x30  R12 = entry
 *   hi-0x38  R13 = data
 *   hi-0x40  R14 = 0
 *   hi-0x48  R15 = 0
 *   hi-0x50  MXCSR = 0x1f80, x87 CW = 0x037f   <- returned context
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
	movq	$0, -0x08(%rax)
	movq	$0, -0x10(%rax)
	movq	%r8, -0x18(%rax)
	movq	$0, -0x20(%rax)
	movq	$0, -0x28(%rax)
	movq	%rdx, -0x30(%rax)
	movq	%rcx, -0x38(%rax)
	movq	$0, -0x40(%rax)
	movq	$0, -0x48(%rax)
	movl	$0x1f80, -0x50(%rax)	/* default MXCSR: all masked, nearest */
	movl	$0x037f, -0x4c(%rax)	/* default x87 CW: 64-bit, nearest */
	leaq	-0x50(%rax), %rax
	ret
	.cfi_endproc
	.size	weft__ctx_make_asm, .-weft__ctx_make_asm
	.size	weft__ctx_make_ret_asm, .-weft__ctx_make_ret_asm

/* The start of both trampolines below: entry(arg, data), as the outermost
 * frame. */
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
	movq	%rax, %rsp		/* to the resumed stack */
	ldmxcsr	(%rsp)			/* restore as the switch does */
	fldcw	4(%rsp)
	leaq	8(%rsp), %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	movq	%rdx, %rax		/* hand arg to the resumed side */
	ret
1:	ud2
	.cfi_endproc
	.size	weft__ctx_trampoline_ret, .-weft__ctx_trampoline_ret

	.section .note.GNU-stack,"",%progbits
