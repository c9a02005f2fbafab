/*
 * calls.c -> calls-O0.elf and calls-O2.elf: a debugger test subject.
 *
 * Call chain: kmain -> compute -> accumulate -> leaf (then _start64 below
 * kmain), plus a recursive factorial(). Tests find line numbers by grepping
 * for the MARK:<name> comments; README.md lists what is in scope at each.
 *
 * Every function is noipa (no inlining, cloning or IPA tricks, so names
 * stay plain at -O2) and no call is in tail position, so each call is a
 * real frame. Locals that tests inspect are volatile: they live in the
 * frame and are printable even at -O2.
 */
#include "lib.h"

#define NOIPA   __attribute__((noipa))
#define BARRIER() __asm__ volatile("" : : : "memory")
/* A real instruction on a marker line, so a line breakpoint lands exactly
 * there, after every earlier store. */
#define STOP_HERE() __asm__ volatile("nop" : : : "memory")

enum color { RED, GREEN, BLUE };

struct point {
	int x;
	int y;
};

struct shape {
	const char *name;
	int sides[4];
	enum color color;
	struct point corner;
};

int counter;                                   /* watch counter: 0 -> 30 */
int values[5] = { 10, 20, 30, 40, 50 };
enum color favorite = GREEN;
struct shape shape = { "square", { 5, 6, 7, 8 }, BLUE, { 7, 9 } };

NOIPA int leaf(int level, const struct point *pt, const int *src)
{
	volatile int depth = level;
	volatile struct point p = { pt->x, pt->y };
	volatile int arr[5];
	volatile enum color shade = shape.color;

	for (int i = 0; i < 5; i++)
		arr[i] = src[i];
	counter += depth * 10; /* MARK:counter-write */
	STOP_HERE(); /* MARK:leaf */
	return depth + p.x + arr[2] + (int)shade - (int)BLUE;
}

NOIPA int accumulate(int base, const struct shape *s)
{
	volatile int acc = base;
	int r;

	for (int i = 0; i < 4; i++)
		acc += s->sides[i];
	r = leaf(3, &s->corner, values); /* MARK:call-leaf */
	BARRIER();
	return acc + r; /* MARK:after-leaf */
}

NOIPA int compute(const int *arr, int n)
{
	volatile int sum = 0;
	volatile enum color c = RED;
	int r;

	for (int i = 0; i < n; i++)
		sum += arr[i]; /* MARK:compute-loop */
	c = favorite;
	r = accumulate(sum, &shape); /* MARK:call-accumulate */
	BARRIER();
	return r + (c == GREEN); /* MARK:after-accumulate */
}

NOIPA unsigned long factorial(unsigned int n)
{
	unsigned long r;

	if (n <= 1) {
		serial_puts("calls: factorial base\n"); /* MARK:fact-base */
		return 1;
	}
	r = factorial(n - 1); /* MARK:fact-recurse */
	BARRIER();
	return n * r;
}

int kmain(void)
{
	int total;
	unsigned long f;
	int result;

	serial_init();
	serial_puts("calls: start\n");
	total = compute(values, 5); /* MARK:call-compute */
	serial_puts("calls: compute="); /* MARK:after-call */
	print_dec(total);
	serial_puts("\n");
	f = factorial(5); /* MARK:call-factorial */
	serial_puts("calls: factorial(5)=");
	print_dec((int64_t)f);
	serial_puts("\ncalls: counter=");
	print_dec(counter);
	result = (total + (int)f + counter) & 0x7f;
	serial_puts("\ncalls: exit=");
	print_dec(result);
	serial_puts("\n");
	return result; /* MARK:kmain-return */
}
