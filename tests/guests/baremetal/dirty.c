/*
 * dirty-<N>.elf: the snapshot benchmark's guest. Writes one byte in each
 * page of N MiB starting at 32 MiB (so N MiB of guest memory is dirty) and
 * exits with status 1. Built for N = 0, 1, 16 and 64 (-DDIRTY_MIB=N).
 */
#include "lib.h"

#ifndef DIRTY_MIB
#define DIRTY_MIB 0
#endif

int kmain(void)
{
#if DIRTY_MIB > 0
	volatile uint8_t *p = (volatile uint8_t *)(32ul << 20);

	for (unsigned long i = 0; i < DIRTY_MIB * 256ul; i++)
		p[i * 4096] = (uint8_t)(i + 1);
#endif
	return 0;
}
