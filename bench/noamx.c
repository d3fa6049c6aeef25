/* Run ONNX Runtime on this CPU as on one without AMX (an AVX512-VNNI EPYC Zen 4 or Ice Lake Xeon).

MLAS, ONNX Runtime's kernel library, uses AMX only after Linux grants the process the tile data
(arch_prctl ARCH_REQ_XCOMP_PERM, issued through libc's syscall()); this library refuses that one
request, so MLAS keeps its AVX512-VNNI integer kernels. Everything else passes through.

    gcc -shared -fPIC -O2 bench/noamx.c -o /tmp/noamx.so -ldl
    LD_PRELOAD=/tmp/noamx.so python bench/quantize_options.py MODEL.onnx --recipes default

It changes ONNX Runtime's integer GEMM (QLinearMatMul, QGemm, the non-symmetric QLinearConv path);
its float32 kernels and the symmetric integer convolutions never use AMX. torch's oneDNN has its
own switch (ONEDNN_MAX_CPU_ISA). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <sys/syscall.h>

#define ARCH_REQ_XCOMP_PERM 0x1023

long syscall(long number, ...) {
    va_list arguments;
    va_start(arguments, number);
    long a[6];
    for (int i = 0; i < 6; i++) a[i] = va_arg(arguments, long);
    va_end(arguments);
    if (number == SYS_arch_prctl && a[0] == ARCH_REQ_XCOMP_PERM) {
        errno = EPERM;
        return -1;
    }
    static long (*real)(long, ...) = 0;
    if (!real) real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
    return real(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
