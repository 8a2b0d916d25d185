/*
 * switch_nofp.S - a reference for switch.asm, not weft: the same switch
 * without the floating-point control state (MXCSR and the x87 control
 * word).  The System V ABI makes their control bits callee-saved, so a
 * switch that a green thread calls must keep them per thread, as weft's
 * and Boost.Context's do; this one does not, and shows what that costs
 * (bench/switch.c, switch.nofp).  Only bench/switch links it.
 *
 *   void *ref_nofp_switch(void **from, void *to, void *arg)
 *     saves the callee-saved integer registers on the caller's stack and
 *     the stack pointer in *from, switches to the stack `to`, restores
 *     its registers and returns arg there.
 *   ref_nofp_start
 *     where a new context's first switch returns to (bench/switch.c
 *     builds the frame): calls entry(arg, data), with entry in R12 and
 *     data in R13 from that frame; entry never returns.
 */
	.text
	.globl	ref_nofp_switch
	.type	ref_nofp_switch, @function
	.p2align 4
ref_nofp_switch:
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	movq	%rsp, (%rdi)
	movq	%rsi, %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	movq	%rdx, %rax
	ret
	.size	ref_nofp_switch, .-ref_nofp_switch

	.globl	ref_nofp_start
	.type	ref_nofp_start, @function
	.p2align 4
ref_nofp_start:
	movq	%rax, %rdi		/* arg, as the switch returned it */
	movq	%r13, %rsi		/* data */
	call	*%r12			/* entry(arg, data) */
	ud2				/* entry never returns */
	.size	ref_nofp_start, .-ref_nofp_start

	.section .note.GNU-stack,"",@progbits
