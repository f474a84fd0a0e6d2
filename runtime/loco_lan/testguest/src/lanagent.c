/* loco-lan: the test guest's DirectPlay stand-in and port prober (static i386, glibc).
 *
 *   loco-lan serve [tcp/2300 udp/2300 ...]   answer on these ports (default: TCP and UDP 2300 and 47624)
 *   loco-lan probe NAME TOKEN SECONDS TARGET=ADDR... [-- PROTO/PORT...]
 *
 * The wire format is the network check's (loco_lan.netcheck.agent): a probe sends
 * "LOCO-NETCHECK <token> <sender>\n" and a host answers with the same line carrying its own
 * name, here the guest's hostname. `probe` prints the same JSON as the agent's probe mode. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAGIC "LOCO-NETCHECK"
#define MAX_PORTS 16
#define MAX_JOBS 256

struct port { int tcp; int number; };

static int parse_port(const char *text, struct port *out) {
    if (!strncmp(text, "tcp/", 4)) out->tcp = 1;
    else if (!strncmp(text, "udp/", 4)) out->tcp = 0;
    else return -1;
    out->number = atoi(text + 4);
    return out->number > 0 && out->number < 65536 ? 0 : -1;
}

static const struct port DEFAULT_PORTS[] = {{1, 2300}, {0, 2300}, {1, 47624}, {0, 47624}};

/* The answer to a well-formed probe ("MAGIC token sender"), or 0 for anything else. */
static int answer(const char *probe, size_t length, char *reply, size_t size) {
    char magic[32], token[64], sender[128], host[128];
    char text[512];
    if (length >= sizeof text) return 0;
    memcpy(text, probe, length);
    text[length] = 0;
    if (sscanf(text, "%31s %63s %127s", magic, token, sender) != 3 || strcmp(magic, MAGIC)) return 0;
    if (gethostname(host, sizeof host)) strcpy(host, "?");
    host[sizeof host - 1] = 0;
    return snprintf(reply, size, "%s %s %s\n", MAGIC, token, host);
}

static int serve(int count, struct port *ports) {
    struct pollfd fds[MAX_PORTS];
    for (int i = 0; i < count; i++) {
        int fd = socket(AF_INET, ports[i].tcp ? SOCK_STREAM : SOCK_DGRAM, 0), on = 1;
        struct sockaddr_in any = {.sin_family = AF_INET, .sin_port = htons(ports[i].number)};
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
        if (fd < 0 || bind(fd, (struct sockaddr *)&any, sizeof any) || (ports[i].tcp && listen(fd, 64))) {
            fprintf(stderr, "loco-lan: %s/%d: %s\n", ports[i].tcp ? "tcp" : "udp", ports[i].number, strerror(errno));
            return 1;
        }
        fds[i] = (struct pollfd){.fd = fd, .events = POLLIN};
    }
    for (;;) {
        if (poll(fds, count, -1) < 0 && errno != EINTR) return 1;
        for (int i = 0; i < count; i++) {
            if (!(fds[i].revents & POLLIN)) continue;
            char data[512], reply[512];
            int length;
            if (!ports[i].tcp) {
                struct sockaddr_in peer;
                socklen_t size = sizeof peer;
                ssize_t got = recvfrom(fds[i].fd, data, sizeof data, 0, (struct sockaddr *)&peer, &size);
                if (got > 0 && (length = answer(data, got, reply, sizeof reply)))
                    sendto(fds[i].fd, reply, length, 0, (struct sockaddr *)&peer, size);
                continue;
            }
            int conn = accept(fds[i].fd, 0, 0);
            if (conn < 0) continue;
            struct timeval wait = {1, 0};
            setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
            size_t have = 0;
            ssize_t got;
            while (have < sizeof data && (got = read(conn, data + have, sizeof data - have)) > 0) {
                have += got;
                if (memchr(data, '\n', have)) break;
            }
            if ((length = answer(data, have, reply, sizeof reply))) (void)!write(conn, reply, length);
            close(conn);
        }
    }
}

struct job { const char *name, *text; struct sockaddr_in addr; struct port port; int fd, sent, done, ok;
             double tried; char got[512]; size_t have; char answered[128], error[96]; };

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void fail(struct job *job, int error, const char *why) {
    snprintf(job->error, sizeof job->error, "%s", error ? strerror(error) : why);
    for (char *c = job->error; *c; c++) if (*c >= 'A' && *c <= 'Z') *c += 32;
    close(job->fd);
    job->fd = -1;
}

/* One try: a UDP datagram, or a TCP connect whose probe goes out once it is up. */
static void try(struct job *job, const char *message) {
    job->fd = socket(AF_INET, (job->port.tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK, 0);
    job->have = job->sent = 0;
    job->tried = now();
    if (connect(job->fd, (struct sockaddr *)&job->addr, sizeof job->addr) && errno != EINPROGRESS) {
        fail(job, errno, "");
        return;
    }
    if (!job->port.tcp) job->sent = send(job->fd, message, strlen(message), 0) > 0;
}

static void read_answer(struct job *job, const char *token) {
    char magic[32], seen[64], who[128];
    job->got[job->have] = 0;
    if (sscanf(job->got, "%31s %63s %127s", magic, seen, who) != 3 || strcmp(magic, MAGIC) || strcmp(seen, token)) {
        fail(job, 0, "something else answers on this port");
        return;
    }
    snprintf(job->answered, sizeof job->answered, "%s", who);
    job->ok = !strcmp(who, job->name);
    snprintf(job->error, sizeof job->error, job->ok ? "" : "answered by %.60s", who);
    job->done = 1;
    close(job->fd);
    job->fd = -1;
}

static int probe(int argc, char **argv) {
    const char *name = argv[0], *token = argv[1];
    double deadline = now() + atof(argv[2]);
    struct port ports[MAX_PORTS];
    int nports = 0, count = 0;
    static struct job jobs[MAX_JOBS];
    char message[256];
    snprintf(message, sizeof message, "%s %s %s\n", MAGIC, token, name);
    for (int i = 3; i < argc; i++)
        if (!strcmp(argv[i], "--"))
            for (i++; i < argc && nports < MAX_PORTS; i++) nports += !parse_port(argv[i], &ports[nports]);
    if (!nports) { memcpy(ports, DEFAULT_PORTS, sizeof DEFAULT_PORTS); nports = 4; }
    for (int i = 3; i < argc && strcmp(argv[i], "--"); i++) {
        char *equals = strchr(argv[i], '=');
        if (!equals) continue;
        *equals = 0;
        for (int p = 0; p < nports && count < MAX_JOBS; p++) {
            struct job *job = &jobs[count++];
            *job = (struct job){.name = argv[i], .text = equals + 1, .port = ports[p], .fd = -1};
            job->addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(ports[p].number)};
            inet_pton(AF_INET, job->text, &job->addr.sin_addr);
            strcpy(job->error, "not tried");
        }
    }
    for (double left; (left = deadline - now()) > 0;) {
        struct pollfd fds[MAX_JOBS];
        int index[MAX_JOBS], n = 0, pending = 0;
        for (int i = 0; i < count; i++) {
            struct job *job = &jobs[i];
            if (job->done) continue;
            pending++;
            /* A try that got nothing within its window is made again: the listener may start late. */
            if (job->fd >= 0 && now() - job->tried > (job->port.tcp ? 1.0 : 0.5))
                fail(job, 0, job->port.tcp ? "timed out" : "no answer");
            if (job->fd < 0 && now() - job->tried > 0.1) try(job, message);
            if (job->fd < 0) continue;
            fds[n] = (struct pollfd){.fd = job->fd, .events = job->sent ? POLLIN : POLLOUT};
            index[n++] = i;
        }
        if (!pending) break;
        poll(fds, n, left < 0.05 ? (int)(left * 1000) + 1 : 50);
        for (int k = 0; k < n; k++) {
            struct job *job = &jobs[index[k]];
            int error = 0;
            socklen_t size = sizeof error;
            if (!fds[k].revents) continue;
            if (!job->sent) {  /* TCP connect finished, one way or the other */
                getsockopt(job->fd, SOL_SOCKET, SO_ERROR, &error, &size);
                if (error) fail(job, error, "");
                else job->sent = send(job->fd, message, strlen(message), MSG_NOSIGNAL) > 0;
                continue;
            }
            ssize_t got = recv(job->fd, job->got + job->have, sizeof job->got - 1 - job->have, 0);
            if (got < 0) fail(job, errno, "");
            else if (got > 0 && (job->have += got) && (!job->port.tcp || memchr(job->got, '\n', job->have)))
                read_answer(job, token);
            else if (got == 0) job->have ? read_answer(job, token) : fail(job, 0, "connection closed");
        }
    }
    printf("{\"results\": [");
    for (int i = 0; i < count; i++) {
        struct job *job = &jobs[i];
        if (job->fd >= 0) close(job->fd);
        printf("%s{\"target\": \"%s\", \"addr\": \"%s\", \"proto\": \"%s\", \"port\": %d, \"ok\": %s, "
               "\"answered_by\": \"%s\", \"error\": \"%s\"}", i ? ", " : "", job->name, job->text,
               job->port.tcp ? "tcp" : "udp", job->port.number, job->ok ? "true" : "false", job->answered,
               job->error);
    }
    printf("]}\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "serve")) {
        struct port ports[MAX_PORTS];
        int count = 0;
        for (int i = 2; i < argc && count < MAX_PORTS; i++)
            if (parse_port(argv[i], &ports[count]) == 0) count++;
        if (!count) { memcpy(ports, DEFAULT_PORTS, sizeof DEFAULT_PORTS); count = 4; }
        return serve(count, ports);
    }
    if (argc >= 5 && !strcmp(argv[1], "probe")) return probe(argc - 2, argv + 2);
    fprintf(stderr, "usage: loco-lan serve [PROTO/PORT...] | probe NAME TOKEN SECONDS TARGET=ADDR... [-- PROTO/PORT...]\n");
    return 2;
}
