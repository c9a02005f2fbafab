/* A long loop for the stepping benchmark (agent_step_bench): `next` and
 * `stepi` run through it many times. */
static int square(int v)
{
    return v * v;
}

int main(void)
{
    long total = 0;
    for (int i = 0; i < 1000000; i++) {
        total += square(i); /* MARK:loop_body */
    }
    return total == 0;
}
