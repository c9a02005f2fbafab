/* Calls into libshape.so, linked with an rpath to where the test built it. */
#include <stdio.h>

int shape_area(int width, int height);

int main(void)
{
    int area = shape_area(6, 7);
    printf("area=%d\n", area);
    return area == 42 ? 0 : 1;
}
