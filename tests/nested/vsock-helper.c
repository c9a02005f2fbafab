/* vsock-helper: the two ends of a vsock round trip for the nested tier.
 * One static binary serves inside L2 (AF_VSOCK) and in L1 (the VMM's
 * Firecracker-style unix sockets), since busybox's nc speaks neither.
 *
 *   vsock-helper listen PORT          (L2) accept one vsock connection on
 *                                     PORT, read a line, answer "echo:" line
 *   vsock-helper connect PORT MSG     (L2) connect to the host (CID 2) PORT,
 *                                     send MSG\n, print the answer line
 *   vsock-helper uds-connect PATH PORT MSG
 *                                     (L1) "CONNECT PORT\n" on the VMM's
 *                                     socket, expect "OK ...", send MSG\n,
 *                                     print the answer line
 *   vsock-helper uds-listen PATH      (L1) accept one unix connection,
 *                                     read a line, answer "echo:" line
 *   vsock-helper clock                the wall clock in ms since the epoch
 *                                     (busybox's date has no %N), to hold
 *                                     a restored guest's clock against L1's
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <linux/vm_sockets.h>

static int read_line(int fd, char *buf, size_t cap) {
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t r = read(fd, buf + n, 1);
        if (r <= 0) return -1;
        if (buf[n] == '\n') break;
        n++;
    }
    buf[n] = 0;
    return (int)n;
}

static int write_all(int fd, const char *s, size_t len) {
    while (len) {
        ssize_t w = write(fd, s, len);
        if (w <= 0) return -1;
        s += w; len -= (size_t)w;
    }
    return 0;
}

static void die(const char *what) { perror(what); exit(1); }

static void echo_one(int fd) {
    char line[4096], out[4200];
    if (read_line(fd, line, sizeof line) < 0) die("read");
    snprintf(out, sizeof out, "echo:%s\n", line);
    if (write_all(fd, out, strlen(out))) die("write");
}

static void send_and_print(int fd, const char *msg) {
    char line[4096];
    if (write_all(fd, msg, strlen(msg)) || write_all(fd, "\n", 1)) die("write");
    if (read_line(fd, line, sizeof line) < 0) die("read answer");
    printf("%s\n", line);
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "clock")) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        printf("%lld\n", (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000);
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "listen")) {
        int s = socket(AF_VSOCK, SOCK_STREAM, 0);
        if (s < 0) die("socket(AF_VSOCK)");
        struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_port = atoi(argv[2]), .svm_cid = VMADDR_CID_ANY};
        if (bind(s, (void *)&a, sizeof a) || listen(s, 1)) die("bind/listen");
        printf("@@L2-VSOCK-LISTENING %s\n", argv[2]);
        fflush(stdout);
        int c = accept(s, NULL, NULL);
        if (c < 0) die("accept");
        echo_one(c);
        close(c);
        return 0;
    }
    if (argc == 4 && !strcmp(argv[1], "connect")) {
        int s = socket(AF_VSOCK, SOCK_STREAM, 0);
        if (s < 0) die("socket(AF_VSOCK)");
        struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_port = atoi(argv[2]), .svm_cid = VMADDR_CID_HOST};
        if (connect(s, (void *)&a, sizeof a)) die("connect");
        send_and_print(s, argv[3]);
        return 0;
    }
    if ((argc == 5 && !strcmp(argv[1], "uds-connect")) || (argc == 3 && !strcmp(argv[1], "uds-listen"))) {
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        strncpy(a.sun_path, argv[2], sizeof a.sun_path - 1);
        if (argv[1][4] == 'l') {
            unlink(argv[2]);
            if (bind(s, (void *)&a, sizeof a) || listen(s, 1)) die("bind/listen");
            int c = accept(s, NULL, NULL);
            if (c < 0) die("accept");
            echo_one(c);
            close(c);
            return 0;
        }
        if (connect(s, (void *)&a, sizeof a)) die("connect");
        char line[256];
        snprintf(line, sizeof line, "CONNECT %s\n", argv[3]);
        if (write_all(s, line, strlen(line))) die("write");
        if (read_line(s, line, sizeof line) < 0) die("read OK line");
        printf("%s\n", line);
        if (strncmp(line, "OK ", 3)) return 2;
        send_and_print(s, argv[4]);
        return 0;
    }
    fprintf(stderr, "usage: see the comment atop vsock-helper.c\n");
    return 64;
}
