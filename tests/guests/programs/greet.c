/* libgreet.so: the shared library of greeter.c, built beside it. */
const char *greeting(void) { return "hello from libgreet"; }
