/* Runs until interrupted or killed. */
#include <unistd.h>

volatile unsigned long spins;

int main(void)
{
    for (;;) {
        spins++;
        if ((spins & 0xfffff) == 0)
            usleep(1000);
    }
}
