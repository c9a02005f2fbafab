/* A shared library the test builds as libshape.so. */
int shape_area(int width, int height)
{
    int area = width * height; /* MARK:area */
    return area;
}
