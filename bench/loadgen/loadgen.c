/*
 * loadgen: a small single-threaded WebSocket load generator for the tether benchmarks.
 *
 * One epoll loop, non-blocking sockets, the RFC 6455 client handshake done by hand,
 * every client frame masked with a fresh key (RFC 6455 5.3). Optional TLS through OpenSSL.
 * It prints one JSON object on stdout; run.py reads it.
 *
 * Scenarios (--scenario):
 *   echo       N connections, each keeps --inflight messages in flight; round-trips/s and
 *              latency percentiles over a measurement window after a warm-up.
 *   bcast      N connections; connection 0 sends "!bcast K SIZE"; time until all N*K
 *              deliveries have arrived.
 *   idle       open N connections, one small echo each, then read the server's VmRSS.
 *   handshake  C concurrent sessions of: connect, handshake, one echo, close handshake,
 *              wait for the server to close TCP; completed sessions per second.
 *
 * Build: gcc -O2 -o loadgen loadgen.c -lssl -lcrypto   (or -DLOADGEN_NO_TLS without OpenSSL)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef LOADGEN_NO_TLS
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#endif

#define RING 64              /* max messages in flight per connection */
#define SCRATCH (256 * 1024) /* one read() worth of bytes */
#define MAX_HTTP 16384       /* bound on the handshake response */
#define MAX_RBUF (64u << 20) /* bound on a buffered frame */

/* ------------------------------------------------------------------------- */
/* configuration and global state                                            */

enum { SC_ECHO, SC_BCAST, SC_IDLE, SC_HANDSHAKE };
enum { ST_FREE, ST_CONNECTING, ST_TLS, ST_HTTP, ST_OPEN, ST_CLOSE_SENT, ST_WAIT_EOF };
enum {
    PH_CONNECT,
    PH_PRIME,
    PH_SETTLE,
    PH_WARMUP,
    PH_MEASURE,
    PH_RUN,
    PH_DRAIN,
    PH_CLOSING,
    PH_EXIT
};

static struct {
    const char *host;
    int port;
    int tls;
    int scenario;
    int conns;
    size_t size;
    int binary;
    int inflight;
    double warmup;
    double duration;
    uint64_t max_msgs;
    int bcast_k;
    double settle;
    int server_pid;
    int connect_conc;
    double timeout;
    double close_wait;
} cfg = {
    .host = "127.0.0.1",
    .port = 0,
    .conns = 1,
    .size = 16,
    .inflight = 1,
    .warmup = 1.0,
    .duration = 5.0,
    .max_msgs = UINT64_MAX,
    .bcast_k = 100,
    .settle = 1.0,
    .connect_conc = 64,
    .timeout = 120.0,
    .close_wait = 2.0,
};

typedef struct conn {
    int fd;
    int state;
    int idx;
    uint32_t gen; /* bumped whenever the slot is finished: guards re-entrancy */
    uint32_t events;
#ifndef LOADGEN_NO_TLS
    SSL *ssl;
    int tls_want_write;
#endif
    uint8_t *rbuf;
    size_t rlen, rcap;
    uint8_t *wbuf;
    size_t wlen, woff, wcap;
    char accept[32];
    uint64_t ring[RING];
    int rhead, rcount;
    uint64_t t_start, deadline;
    int frag_op;
    size_t frag_len;
    uint64_t got;
} conn_t;

static struct {
    int ep;
    struct sockaddr_in addr;
    conn_t **c;
    int nslots;
    int phase;
    uint64_t phase_end;
    uint64_t hard_deadline;
    const char *fail; /* set when the run is not valid */
    /* connection pump */
    int next_open, opening, open_now, primed;
    /* payload */
    uint8_t *payload;
    size_t plen;
    /* results */
    uint64_t count, bytes, deliveries, clients_done;
    uint64_t t0, t1, t_first, t_connect0, t_connected;
    long rss0, rss1;
    double cpu0, cpu1, scpu0, scpu1;
    uint64_t sessions_started;
    /* errors */
    uint64_t e_connect, e_handshake, e_verify, e_unexpected, e_closed, e_close_timeout, e_io;
    uint64_t rng;
#ifndef LOADGEN_NO_TLS
    SSL_CTX *ssl_ctx;
#endif
} G;

static uint8_t scratch[SCRATCH];

/* fine histogram: 1 us buckets up to 200 ms; coarse: 1 ms buckets up to 600 s */
#define FINE_US 200000
#define COARSE_MS 600000
static uint32_t hist_fine[FINE_US];
static uint32_t hist_coarse[COARSE_MS];
static uint64_t hist_n, hist_max;

static void hist_add(uint64_t us) {
    if (us < FINE_US)
        hist_fine[us]++;
    else if (us / 1000 < COARSE_MS)
        hist_coarse[us / 1000]++;
    else
        hist_coarse[COARSE_MS - 1]++;
    hist_n++;
    if (us > hist_max) hist_max = us;
}

static double hist_pct(double p) {
    if (!hist_n) return 0;
    uint64_t want = (uint64_t)(p / 100.0 * (double)hist_n);
    if (want >= hist_n) want = hist_n - 1;
    uint64_t seen = 0;
    for (uint64_t i = 0; i < FINE_US; i++) {
        seen += hist_fine[i];
        if (seen > want) return (double)i;
    }
    for (uint64_t i = 0; i < COARSE_MS; i++) {
        seen += hist_coarse[i];
        if (seen > want) return (double)i * 1000.0;
    }
    return (double)hist_max;
}

/* ------------------------------------------------------------------------- */
/* small helpers                                                             */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t secs(double s) { return (uint64_t)(s * 1e9); }

static uint64_t rnd(void) {
    /* xorshift64*: masking keys only need to vary, not to be cryptographic here */
    G.rng ^= G.rng >> 12;
    G.rng ^= G.rng << 25;
    G.rng ^= G.rng >> 27;
    return G.rng * 2685821657736338717ull;
}

static double self_cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static double server_cpu(void) {
    if (cfg.server_pid <= 0) return -1;
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", cfg.server_pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may contain spaces */
    if (!p) return -1;
    unsigned long ut = 0, st = 0;
    /* fields after ")" start at field 3 (state); utime is 14, stime is 15 */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long server_rss_kib(void) {
    if (cfg.server_pid <= 0) return -1;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", cfg.server_pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

static void base64(const uint8_t *in, size_t n, char *out) {
    static const char T[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i = 0, o = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = T[v >> 18 & 63];
        out[o++] = T[v >> 12 & 63];
        out[o++] = T[v >> 6 & 63];
        out[o++] = T[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = T[v >> 18 & 63];
        out[o++] = T[v >> 12 & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = T[v >> 18 & 63];
        out[o++] = T[v >> 12 & 63];
        out[o++] = T[v >> 6 & 63];
        out[o++] = '=';
    }
    out[o] = 0;
}

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n);
    if (!q) {
        fprintf(stderr, "loadgen: out of memory\n");
        exit(2);
    }
    return q;
}

/* ------------------------------------------------------------------------- */
/* socket / TLS I/O                                                          */

static void conn_finish(conn_t *c, int ok);
static void on_open(conn_t *c);
static void on_message(conn_t *c, int op, const uint8_t *p, size_t n, int whole);
static void on_finished(conn_t *c, int ok);
static void fail(const char *why);

/* epoll carries slot index and generation: events queued for a finished slot are dropped */
static uint64_t tag(const conn_t *c) { return (uint64_t)c->gen << 32 | (uint32_t)c->idx; }

static void set_interest(conn_t *c) {
    uint32_t want = EPOLLIN;
    if (c->state == ST_CONNECTING || c->wlen > c->woff) want |= EPOLLOUT;
#ifndef LOADGEN_NO_TLS
    if (c->tls_want_write) want |= EPOLLOUT;
#endif
    if (want != c->events) {
        struct epoll_event ev = {.events = want, .data.u64 = tag(c)};
        epoll_ctl(G.ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->events = want;
    }
}

/* >0 bytes, 0 EOF, -1 would block, -2 error */
static ssize_t io_recv(conn_t *c, uint8_t *buf, size_t n) {
#ifndef LOADGEN_NO_TLS
    if (c->ssl) {
        int r = SSL_read(c->ssl, buf, (int)n);
        if (r > 0) return r;
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ) return -1;
        if (e == SSL_ERROR_WANT_WRITE) {
            c->tls_want_write = 1;
            return -1;
        }
        if (e == SSL_ERROR_ZERO_RETURN) return 0;
        if (e == SSL_ERROR_SYSCALL && errno == 0) return 0;
        ERR_clear_error();
        return -2;
    }
#endif
    ssize_t r = recv(c->fd, buf, n, 0);
    if (r >= 0) return r;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return -1;
    return -2;
}

static ssize_t io_send(conn_t *c, const uint8_t *buf, size_t n) {
#ifndef LOADGEN_NO_TLS
    if (c->ssl) {
        int r = SSL_write(c->ssl, buf, (int)(n > (1u << 30) ? (1u << 30) : n));
        if (r > 0) return r;
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) return -1;
        ERR_clear_error();
        return -2;
    }
#endif
    ssize_t r = send(c->fd, buf, n, MSG_NOSIGNAL);
    if (r >= 0) return r;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return -1;
    return -2;
}

/* returns 0, or -1 if the connection was finished */
static int flush(conn_t *c) {
#ifndef LOADGEN_NO_TLS
    c->tls_want_write = 0;
#endif
    while (c->woff < c->wlen) {
        ssize_t n = io_send(c, c->wbuf + c->woff, c->wlen - c->woff);
        if (n > 0)
            c->woff += (size_t)n;
        else if (n == -1)
            break;
        else {
            G.e_io++;
            conn_finish(c, 0);
            return -1;
        }
    }
    if (c->woff == c->wlen) c->woff = c->wlen = 0;
    set_interest(c);
    return 0;
}

static uint8_t *wreserve(conn_t *c, size_t n) {
    if (c->woff && c->woff == c->wlen) c->woff = c->wlen = 0;
    if (c->wlen + n > c->wcap) {
        if (c->woff) { /* compact before growing */
            memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
            c->wlen -= c->woff;
            c->woff = 0;
        }
        if (c->wlen + n > c->wcap) {
            size_t cap = c->wcap ? c->wcap : 256;
            while (cap < c->wlen + n) cap *= 2;
            c->wbuf = xrealloc(c->wbuf, cap);
            c->wcap = cap;
        }
    }
    uint8_t *p = c->wbuf + c->wlen;
    c->wlen += n;
    return p;
}

/* RFC 6455 5.2: client-to-server frames are always masked (5.3) */
static int send_frame(conn_t *c, int op, const uint8_t *payload, size_t n) {
    size_t hdr = 2 + 4 + (n < 126 ? 0 : n < 65536 ? 2 : 8);
    uint8_t *p = wreserve(c, hdr + n);
    p[0] = (uint8_t)(0x80 | op);
    size_t h = 2;
    if (n < 126)
        p[1] = (uint8_t)(0x80 | n);
    else if (n < 65536) {
        p[1] = 0x80 | 126;
        p[2] = (uint8_t)(n >> 8);
        p[3] = (uint8_t)n;
        h = 4;
    } else {
        p[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++) p[2 + i] = (uint8_t)(n >> (56 - 8 * i));
        h = 10;
    }
    uint32_t key32 = (uint32_t)rnd();
    uint8_t key[4];
    memcpy(key, &key32, 4);
    memcpy(p + h, key, 4);
    uint8_t *dst = p + h + 4;
    uint64_t k64;
    memcpy(&k64, key, 4);
    memcpy((uint8_t *)&k64 + 4, key, 4);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, payload + i, 8);
        v ^= k64;
        memcpy(dst + i, &v, 8);
    }
    for (; i < n; i++) dst[i] = payload[i] ^ key[i & 3];
    return flush(c);
}

static int send_close(conn_t *c, uint16_t code) {
    uint8_t b[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    c->state = ST_CLOSE_SENT;
    c->deadline = now_ns() + secs(cfg.close_wait);
    return send_frame(c, 0x8, b, 2);
}

/* send the benchmark payload and remember when */
static int send_msg(conn_t *c) {
    if (c->rcount >= RING) return 0;
    c->ring[(c->rhead + c->rcount) % RING] = now_ns();
    c->rcount++;
    return send_frame(c, cfg.binary ? 0x2 : 0x1, G.payload, G.plen);
}

static int send_text(conn_t *c, const char *s) {
    c->ring[(c->rhead + c->rcount) % RING] = now_ns();
    c->rcount++;
    return send_frame(c, 0x1, (const uint8_t *)s, strlen(s));
}

/* ------------------------------------------------------------------------- */
/* connection lifecycle                                                      */

static void conn_start(conn_t *c) {
    c->events = 0;
#ifndef LOADGEN_NO_TLS
    c->ssl = NULL;
    c->tls_want_write = 0;
#endif
    c->accept[0] = 0;
    c->deadline = 0;
    c->rlen = c->wlen = c->woff = 0;
    c->rhead = c->rcount = 0;
    c->got = 0;
    c->frag_op = 0;
    c->frag_len = 0;
    c->t_start = now_ns();
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) { /* out of descriptors: raise ulimit -n */
        G.e_connect++;
        c->state = ST_FREE;
        fail("socket() failed");
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = ST_CONNECTING;
    c->events = EPOLLIN | EPOLLOUT;
    struct epoll_event ev = {.events = c->events, .data.u64 = tag(c)};
    epoll_ctl(G.ep, EPOLL_CTL_ADD, c->fd, &ev);
    G.opening++;
    if (connect(c->fd, (struct sockaddr *)&G.addr, sizeof G.addr) < 0 && errno != EINPROGRESS) {
        G.e_connect++;
        conn_finish(c, 0);
    }
}

static void send_http(conn_t *c) {
    uint8_t raw[16];
    char key[32];
    for (int i = 0; i < 16; i += 8) {
        uint64_t r = rnd();
        memcpy(raw + i, &r, 8);
    }
    base64(raw, 16, key);
#ifndef LOADGEN_NO_TLS
    /* RFC 6455 4.1: accept = base64(SHA-1(key + GUID)) */
    char cat[128];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int n = snprintf(cat, sizeof cat, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    EVP_Digest(cat, (size_t)n, md, &mdlen, EVP_sha1(), NULL);
    base64(md, mdlen, c->accept);
#else
    c->accept[0] = 0;
#endif
    char req[512];
    int len = snprintf(req, sizeof req,
                       "GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n",
                       cfg.host, cfg.port, key);
    memcpy(wreserve(c, (size_t)len), req, (size_t)len);
    c->state = ST_HTTP;
    flush(c);
}

static void tls_step(conn_t *c) {
#ifndef LOADGEN_NO_TLS
    c->tls_want_write = 0;
    int r = SSL_connect(c->ssl);
    if (r == 1) {
        send_http(c);
        return;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        set_interest(c);
        return;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        c->tls_want_write = 1;
        set_interest(c);
        return;
    }
    ERR_print_errors_fp(stderr);
    G.e_handshake++;
    conn_finish(c, 0);
#else
    (void)c;
#endif
}

static void on_connected(conn_t *c) {
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) {
        G.e_connect++;
        conn_finish(c, 0);
        return;
    }
#ifndef LOADGEN_NO_TLS
    if (cfg.tls) {
        c->ssl = SSL_new(G.ssl_ctx);
        SSL_set_fd(c->ssl, c->fd);
        SSL_set_tlsext_host_name(c->ssl, "localhost");
        SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        c->state = ST_TLS;
        tls_step(c);
        return;
    }
#endif
    send_http(c);
}

static void conn_finish(conn_t *c, int ok) {
    if (c->state == ST_FREE) return;
    if (c->state == ST_CONNECTING || c->state == ST_TLS || c->state == ST_HTTP) G.opening--;
    else G.open_now--;
#ifndef LOADGEN_NO_TLS
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
#endif
    epoll_ctl(G.ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->state = ST_FREE;
    c->gen++;
    c->rlen = c->wlen = c->woff = 0;
    on_finished(c, ok);
}

static const uint8_t *find_crlf2(const uint8_t *p, size_t n) {
    for (size_t i = 3; i < n; i++)
        if (p[i] == '\n' && p[i - 1] == '\r' && p[i - 2] == '\n' && p[i - 3] == '\r')
            return p + i + 1;
    return NULL;
}

static int check_http(conn_t *c, const uint8_t *p, size_t n) {
    if (n < 12 || memcmp(p, "HTTP/1.1 101", 12)) return 0;
    if (!c->accept[0]) return 1;
    /* look for the Sec-WebSocket-Accept header, case-insensitively */
    const char *name = "sec-websocket-accept:";
    size_t nl = strlen(name);
    for (size_t i = 0; i + nl < n; i++) {
        if ((i == 0 || p[i - 1] == '\n') && !strncasecmp((const char *)p + i, name, nl)) {
            size_t j = i + nl;
            while (j < n && (p[j] == ' ' || p[j] == '\t')) j++;
            size_t al = strlen(c->accept);
            return j + al <= n && !memcmp(p + j, c->accept, al);
        }
    }
    return 0;
}

/* parse what is in buf; returns bytes consumed, or -1 if the slot was finished */
static ssize_t process(conn_t *c, uint8_t *buf, size_t len) {
    uint32_t gen = c->gen;
    size_t off = 0;
    if (c->state == ST_HTTP) {
        const uint8_t *end = find_crlf2(buf, len);
        if (!end) {
            if (len > MAX_HTTP) {
                G.e_handshake++;
                conn_finish(c, 0);
                return -1;
            }
            return 0;
        }
        if (!check_http(c, buf, (size_t)(end - buf))) {
            G.e_handshake++;
            fprintf(stderr, "loadgen: bad handshake response: %.*s\n", (int)(end - buf), buf);
            conn_finish(c, 0);
            return -1;
        }
        off = (size_t)(end - buf);
        c->state = ST_OPEN;
        G.opening--;
        G.open_now++;
        on_open(c);
        if (c->gen != gen) return -1;
    }
    while (c->state >= ST_OPEN) {
        if (len - off < 2) break;
        uint8_t *p = buf + off;
        int fin = p[0] >> 7, op = p[0] & 15, masked = p[1] >> 7;
        uint64_t n = p[1] & 127;
        size_t h = 2;
        if (n == 126) {
            if (len - off < 4) break;
            n = (uint64_t)p[2] << 8 | p[3];
            h = 4;
        } else if (n == 127) {
            if (len - off < 10) break;
            n = 0;
            for (int i = 0; i < 8; i++) n = n << 8 | p[2 + i];
            h = 10;
        }
        if (masked) h += 4;
        if (n > MAX_RBUF) {
            G.e_unexpected++;
            conn_finish(c, 0);
            return -1;
        }
        if (len - off < h + n) break;
        uint8_t *pl = p + h;
        if (masked) /* servers must not mask (RFC 6455 5.1); tolerate it anyway */
            for (uint64_t i = 0; i < n; i++) pl[i] ^= p[h - 4 + (i & 3)];
        off += h + (size_t)n;
        if (c->state == ST_WAIT_EOF) continue; /* discard after the close frame */
        switch (op) {
        case 0x1:
        case 0x2:
            if (fin)
                on_message(c, op, pl, (size_t)n, 1);
            else {
                c->frag_op = op;
                c->frag_len = (size_t)n;
            }
            break;
        case 0x0:
            c->frag_len += (size_t)n;
            if (fin) on_message(c, c->frag_op, NULL, c->frag_len, 0);
            break;
        case 0x8:
            if (c->state == ST_OPEN) {
                /* the server closed first: answer, then wait for TCP close */
                if (G.phase != PH_CLOSING) G.e_closed++;
                uint8_t b[2] = {0x03, 0xe8};
                c->state = ST_WAIT_EOF;
                c->deadline = now_ns() + secs(cfg.close_wait);
                send_frame(c, 0x8, b, 2);
            } else {
                c->state = ST_WAIT_EOF;
                c->deadline = now_ns() + secs(cfg.close_wait);
            }
            break;
        case 0x9:
            send_frame(c, 0xA, pl, (size_t)n);
            break;
        default:
            break;
        }
        if (c->gen != gen) return -1;
    }
    return (ssize_t)off;
}

static void do_read(conn_t *c) {
    uint32_t gen = c->gen;
    for (;;) {
        ssize_t n = io_recv(c, scratch, SCRATCH);
        if (n > 0) {
            if (c->rlen == 0) {
                ssize_t used = process(c, scratch, (size_t)n);
                if (used < 0 || c->gen != gen) return;
                size_t left = (size_t)n - (size_t)used;
                if (left) {
                    if (left > c->rcap) {
                        c->rcap = left < 4096 ? 4096 : left * 2;
                        c->rbuf = xrealloc(c->rbuf, c->rcap);
                    }
                    memcpy(c->rbuf, scratch + used, left);
                    c->rlen = left;
                }
            } else {
                if (c->rlen + (size_t)n > c->rcap) {
                    size_t cap = c->rcap;
                    while (cap < c->rlen + (size_t)n) cap *= 2;
                    c->rbuf = xrealloc(c->rbuf, cap);
                    c->rcap = cap;
                }
                memcpy(c->rbuf + c->rlen, scratch, (size_t)n);
                c->rlen += (size_t)n;
                ssize_t used = process(c, c->rbuf, c->rlen);
                if (used < 0 || c->gen != gen) return;
                if (used) {
                    memmove(c->rbuf, c->rbuf + used, c->rlen - (size_t)used);
                    c->rlen -= (size_t)used;
                }
            }
            if (c->rlen > MAX_RBUF + 16) {
                G.e_unexpected++;
                conn_finish(c, 0);
                return;
            }
        } else if (n == 0) {
            /* TCP closed by the server: expected only after the close frames */
            if (c->state == ST_WAIT_EOF)
                conn_finish(c, 1);
            else {
                if (G.phase != PH_CLOSING) G.e_closed++;
                conn_finish(c, c->state == ST_CLOSE_SENT);
            }
            return;
        } else if (n == -1) {
            break;
        } else {
            if (c->state != ST_WAIT_EOF && G.phase != PH_CLOSING) G.e_io++;
            conn_finish(c, c->state == ST_WAIT_EOF);
            return;
        }
    }
#ifndef LOADGEN_NO_TLS
    if (c->tls_want_write) set_interest(c);
#endif
}

static void handle(conn_t *c, uint32_t ev) {
    uint32_t gen = c->gen;
    if (c->state == ST_CONNECTING) {
        if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(c);
        return;
    }
    if (c->state == ST_TLS) {
        tls_step(c);
        return;
    }
    if (ev & EPOLLOUT) {
        if (flush(c) < 0) return;
    }
    if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        if (c->gen != gen) return;
        do_read(c);
    }
}

/* ------------------------------------------------------------------------- */
/* scenarios                                                                 */

static void pump_connects(void) {
    while (G.opening < cfg.connect_conc && G.next_open < G.nslots) conn_start(G.c[G.next_open++]);
}

static void begin_measure(uint64_t now) {
    G.t0 = now;
    G.cpu0 = self_cpu();
    G.scpu0 = server_cpu();
}

static void end_measure(uint64_t now) {
    G.t1 = now;
    G.cpu1 = self_cpu();
    G.scpu1 = server_cpu();
}

static void start_closing(void) {
    G.phase = PH_CLOSING;
    for (int i = 0; i < G.nslots; i++) {
        conn_t *c = G.c[i];
        if (c->state == ST_OPEN)
            send_close(c, 1000);
        else if (c->state != ST_FREE && c->state != ST_CLOSE_SENT && c->state != ST_WAIT_EOF)
            conn_finish(c, 0);
    }
}

static void fail(const char *why) {
    if (!G.fail) G.fail = why;
    if (G.phase < PH_CLOSING) {
        if (!G.t1 && G.t0) end_measure(now_ns());
        start_closing();
    }
}

static void on_open(conn_t *c) {
    switch (cfg.scenario) {
    case SC_ECHO:
        if (G.phase == PH_CONNECT && G.open_now == G.nslots) {
            G.phase = cfg.warmup > 0 ? PH_WARMUP : PH_MEASURE;
            uint64_t now = now_ns();
            G.t_connected = now;
            if (G.phase == PH_MEASURE) {
                begin_measure(now);
                G.phase_end = now + secs(cfg.duration);
            } else
                G.phase_end = now + secs(cfg.warmup);
            for (int i = 0; i < G.nslots; i++)
                for (int k = 0; k < cfg.inflight; k++)
                    if (send_msg(G.c[i]) < 0) return;
        }
        break;
    case SC_BCAST:
    case SC_IDLE:
        /* one round trip proves the server's handler is running for this connection */
        send_text(c, "hi");
        break;
    case SC_HANDSHAKE:
        send_msg(c);
        break;
    }
}

static void on_message(conn_t *c, int op, const uint8_t *p, size_t n, int whole) {
    uint64_t now = now_ns();
    if (cfg.scenario == SC_BCAST && G.phase == PH_RUN) {
        if (op != 0x1 || n != G.plen) {
            G.e_verify++;
            return;
        }
        if (!G.deliveries) G.t_first = now;
        G.deliveries++;
        if (++c->got == (uint64_t)cfg.bcast_k) G.clients_done++;
        if (G.deliveries == (uint64_t)G.nslots * (uint64_t)cfg.bcast_k) {
            end_measure(now);
            start_closing();
        }
        return;
    }
    if (c->state != ST_OPEN) return; /* late data after our close frame */
    if (!c->rcount) {
        G.e_unexpected++;
        return;
    }
    uint64_t sent = c->ring[c->rhead];
    c->rhead = (c->rhead + 1) % RING;
    c->rcount--;

    if (cfg.scenario == SC_BCAST || cfg.scenario == SC_IDLE) {
        if (n != 2 || (whole && memcmp(p, "hi", 2))) G.e_verify++;
        if (++G.primed == G.nslots) {
            G.t_connected = now;
            G.phase = PH_SETTLE;
            G.phase_end = now + (cfg.scenario == SC_IDLE ? secs(cfg.settle) : secs(0.2));
        }
        return;
    }

    int want_op = cfg.binary ? 0x2 : 0x1;
    if (op != want_op || n != G.plen || (whole && memcmp(p, G.payload, n))) G.e_verify++;

    if (cfg.scenario == SC_HANDSHAKE) {
        send_close(c, 1000);
        return;
    }
    /* echo */
    if (G.phase == PH_MEASURE) {
        G.count++;
        G.bytes += n;
        hist_add((now - sent) / 1000);
        if (G.count >= cfg.max_msgs) {
            end_measure(now);
            G.phase = PH_DRAIN;
            G.phase_end = now + secs(2);
        }
    }
    if (G.phase == PH_WARMUP || G.phase == PH_MEASURE) send_msg(c);
}

static void on_finished(conn_t *c, int ok) {
    if (G.phase == PH_CLOSING || G.phase == PH_EXIT) return;
    if (cfg.scenario == SC_HANDSHAKE) {
        uint64_t now = now_ns();
        if (ok && G.phase == PH_MEASURE) {
            G.count++;
            hist_add((now - c->t_start) / 1000);
        }
        if (!ok) G.e_unexpected++;
        if ((G.phase == PH_WARMUP || G.phase == PH_MEASURE) && G.count < cfg.max_msgs) {
            G.sessions_started++;
            conn_start(c);
        } else if (G.phase == PH_MEASURE) {
            end_measure(now);
            G.phase = PH_DRAIN;
            G.phase_end = now + secs(3);
        }
        return;
    }
    /* any other loss of a connection before closing invalidates the run */
    (void)ok;
    fail("connection lost");
}

static int all_free(void) {
    for (int i = 0; i < G.nslots; i++)
        if (G.c[i]->state != ST_FREE) return 0;
    return 1;
}

static void tick(uint64_t now) {
    if (now > G.hard_deadline) {
        if (G.phase < PH_CLOSING) fail("timeout");
        else if (now > G.hard_deadline + secs(cfg.close_wait + 1)) {
            G.phase = PH_EXIT;
            return;
        }
    }
    switch (G.phase) {
    case PH_CONNECT:
        if (cfg.scenario != SC_HANDSHAKE) pump_connects();
        break;
    case PH_SETTLE:
        if (now >= G.phase_end) {
            if (cfg.scenario == SC_IDLE) {
                G.rss1 = server_rss_kib();
                end_measure(now);
                start_closing();
            } else { /* bcast: connection 0 asks for the broadcast */
                char cmd[64];
                snprintf(cmd, sizeof cmd, "!bcast %d %zu", cfg.bcast_k, G.plen);
                G.phase = PH_RUN;
                begin_measure(now_ns());
                send_frame(G.c[0], 0x1, (const uint8_t *)cmd, strlen(cmd));
            }
        }
        break;
    case PH_WARMUP:
        if (now >= G.phase_end) {
            G.phase = PH_MEASURE;
            G.phase_end = now + secs(cfg.duration);
            begin_measure(now);
        }
        break;
    case PH_MEASURE:
        if (now >= G.phase_end) {
            end_measure(now);
            G.phase = PH_DRAIN;
            G.phase_end = now + secs(3);
        }
        break;
    case PH_DRAIN: {
        int busy = 0;
        for (int i = 0; i < G.nslots && !busy; i++)
            busy = cfg.scenario == SC_HANDSHAKE ? G.c[i]->state != ST_FREE : G.c[i]->rcount > 0;
        if (!busy || now >= G.phase_end) {
            if (busy) fail("drain timeout");
            else start_closing();
        }
        break;
    }
    default:
        break;
    }
    /* close handshakes that take too long: give up on them, and count it */
    if (G.phase == PH_CLOSING || cfg.scenario == SC_HANDSHAKE) {
        for (int i = 0; i < G.nslots; i++) {
            conn_t *c = G.c[i];
            if ((c->state == ST_CLOSE_SENT || c->state == ST_WAIT_EOF) && now > c->deadline) {
                G.e_close_timeout++;
                conn_finish(c, 1);
            }
        }
    }
    if (G.phase == PH_CLOSING && all_free()) G.phase = PH_EXIT;
}

/* ------------------------------------------------------------------------- */
/* output                                                                    */

static void report(void) {
    static const char *names[] = {"echo", "bcast", "idle", "handshake"};
    double el = G.t1 > G.t0 ? (double)(G.t1 - G.t0) / 1e9 : 0;
    double gcpu = el > 0 ? (G.cpu1 - G.cpu0) / el * 100 : -1;
    double scpu = (el > 0 && G.scpu0 >= 0 && G.scpu1 >= 0) ? (G.scpu1 - G.scpu0) / el * 100 : -1;
    uint64_t errs = G.e_connect + G.e_handshake + G.e_verify + G.e_unexpected + G.e_closed + G.e_io;
    int ok = !G.fail && !errs;
    printf("{\"ok\": %s, \"error\": ", ok ? "true" : "false");
    if (G.fail)
        printf("\"%s\"", G.fail);
    else if (errs)
        printf("\"errors\"");
    else
        printf("null");
    printf(", \"scenario\": \"%s\", \"conns\": %d, \"size\": %zu, \"binary\": %s, \"tls\": %s",
           names[cfg.scenario], cfg.conns, G.plen, cfg.binary ? "true" : "false",
           cfg.tls ? "true" : "false");
    printf(", \"elapsed_s\": %.6f, \"gen_cpu_pct\": %.1f, \"server_cpu_pct\": %.1f", el, gcpu, scpu);
    switch (cfg.scenario) {
    case SC_ECHO:
        printf(", \"inflight\": %d, \"messages\": %llu, \"rps\": %.1f, \"mb_s\": %.2f", cfg.inflight,
               (unsigned long long)G.count, el > 0 ? G.count / el : 0,
               el > 0 ? (double)G.bytes / el / 1e6 : 0);
        printf(", \"p50_us\": %.0f, \"p99_us\": %.0f, \"max_us\": %llu", hist_pct(50), hist_pct(99),
               (unsigned long long)hist_max);
        break;
    case SC_BCAST:
        printf(", \"k\": %d, \"deliveries\": %llu, \"expected\": %llu, \"deliveries_per_s\": %.1f",
               cfg.bcast_k, (unsigned long long)G.deliveries,
               (unsigned long long)G.nslots * (unsigned long long)cfg.bcast_k,
               el > 0 ? G.deliveries / el : 0);
        printf(", \"first_delivery_us\": %.0f, \"clients_done\": %llu",
               G.t_first > G.t0 ? (double)(G.t_first - G.t0) / 1e3 : 0,
               (unsigned long long)G.clients_done);
        break;
    case SC_IDLE: {
        double per = (G.rss0 > 0 && G.rss1 > 0) ? (double)(G.rss1 - G.rss0) / G.nslots : -1;
        printf(", \"rss_before_kib\": %ld, \"rss_after_kib\": %ld, \"kib_per_conn\": %.2f", G.rss0,
               G.rss1, per);
        printf(", \"connect_all_s\": %.3f",
               G.t_connected > G.t_connect0 ? (double)(G.t_connected - G.t_connect0) / 1e9 : 0);
        break;
    }
    case SC_HANDSHAKE:
        printf(", \"sessions\": %llu, \"conn_per_s\": %.1f, \"p50_us\": %.0f, \"p99_us\": %.0f",
               (unsigned long long)G.count, el > 0 ? G.count / el : 0, hist_pct(50), hist_pct(99));
        break;
    }
    printf(", \"errors\": {\"connect\": %llu, \"handshake\": %llu, \"verify\": %llu, "
           "\"unexpected\": %llu, \"closed_by_server\": %llu, \"io\": %llu, "
           "\"close_timeout\": %llu}}\n",
           (unsigned long long)G.e_connect, (unsigned long long)G.e_handshake,
           (unsigned long long)G.e_verify, (unsigned long long)G.e_unexpected,
           (unsigned long long)G.e_closed, (unsigned long long)G.e_io,
           (unsigned long long)G.e_close_timeout);
    fflush(stdout);
}

/* ------------------------------------------------------------------------- */

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --port P [--host H] [--tls] --scenario echo|bcast|idle|handshake\n"
            "  [--conns N] [--size BYTES] [--binary] [--inflight W] [--warmup S] [--duration S]\n"
            "  [--max N] [--bcast-k K] [--settle S] [--server-pid PID]\n"
            "  [--connect-concurrency N] [--timeout S] [--close-wait S]\n");
    exit(2);
}

int main(int argc, char **argv) {
    static struct option opts[] = {
        {"host", 1, 0, 'h'},       {"port", 1, 0, 'p'},
        {"tls", 0, 0, 'T'},        {"scenario", 1, 0, 's'},
        {"conns", 1, 0, 'c'},      {"size", 1, 0, 'z'},
        {"binary", 0, 0, 'b'},     {"inflight", 1, 0, 'i'},
        {"warmup", 1, 0, 'w'},     {"duration", 1, 0, 'd'},
        {"max", 1, 0, 'm'},        {"bcast-k", 1, 0, 'k'},
        {"settle", 1, 0, 'S'},     {"server-pid", 1, 0, 'P'},
        {"connect-concurrency", 1, 0, 'C'}, {"timeout", 1, 0, 't'},
        {"close-wait", 1, 0, 'W'}, {0, 0, 0, 0},
    };
    cfg.scenario = -1;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'h': cfg.host = optarg; break;
        case 'p': cfg.port = atoi(optarg); break;
        case 'T': cfg.tls = 1; break;
        case 's':
            cfg.scenario = !strcmp(optarg, "echo")        ? SC_ECHO
                           : !strcmp(optarg, "bcast")     ? SC_BCAST
                           : !strcmp(optarg, "idle")      ? SC_IDLE
                           : !strcmp(optarg, "handshake") ? SC_HANDSHAKE
                                                          : -1;
            break;
        case 'c': cfg.conns = atoi(optarg); break;
        case 'z': cfg.size = (size_t)strtoull(optarg, NULL, 10); break;
        case 'b': cfg.binary = 1; break;
        case 'i': cfg.inflight = atoi(optarg); break;
        case 'w': cfg.warmup = atof(optarg); break;
        case 'd': cfg.duration = atof(optarg); break;
        case 'm': cfg.max_msgs = strtoull(optarg, NULL, 10); break;
        case 'k': cfg.bcast_k = atoi(optarg); break;
        case 'S': cfg.settle = atof(optarg); break;
        case 'P': cfg.server_pid = atoi(optarg); break;
        case 'C': cfg.connect_conc = atoi(optarg); break;
        case 't': cfg.timeout = atof(optarg); break;
        case 'W': cfg.close_wait = atof(optarg); break;
        default: usage();
        }
    }
    if (cfg.scenario < 0 || cfg.port <= 0 || cfg.conns < 1 || cfg.inflight < 1 ||
        cfg.inflight > RING || cfg.size > MAX_RBUF)
        usage();
#ifdef LOADGEN_NO_TLS
    if (cfg.tls) {
        fprintf(stderr, "loadgen: built without TLS\n");
        return 3;
    }
#else
    if (cfg.tls) {
        G.ssl_ctx = SSL_CTX_new(TLS_client_method());
        /* self-signed benchmark certificate: no verification */
        SSL_CTX_set_verify(G.ssl_ctx, SSL_VERIFY_NONE, NULL);
    }
#endif
    signal(SIGPIPE, SIG_IGN);

    G.addr.sin_family = AF_INET;
    G.addr.sin_port = htons((uint16_t)cfg.port);
    if (inet_pton(AF_INET, cfg.host, &G.addr.sin_addr) != 1) {
        fprintf(stderr, "loadgen: --host must be an IPv4 address\n");
        return 2;
    }
    G.rng = (uint64_t)now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ull;
    if (!G.rng) G.rng = 1;

    /* payload: printable ASCII for text, pseudo-random bytes for binary */
    if (cfg.scenario == SC_BCAST || cfg.scenario == SC_IDLE) cfg.binary = 0;
    G.plen = cfg.size;
    G.payload = xrealloc(NULL, G.plen ? G.plen : 1);
    for (size_t i = 0; i < G.plen; i++)
        G.payload[i] = cfg.binary ? (uint8_t)rnd() : (uint8_t)('a' + i % 26);

    G.nslots = cfg.conns;
    G.c = calloc((size_t)G.nslots, sizeof *G.c);
    for (int i = 0; i < G.nslots; i++) {
        G.c[i] = calloc(1, sizeof(conn_t));
        G.c[i]->idx = i;
        G.c[i]->fd = -1;
    }
    G.ep = epoll_create1(EPOLL_CLOEXEC);
    uint64_t start = now_ns();
    G.hard_deadline = start + secs(cfg.timeout);
    G.t_connect0 = start;
    if (cfg.scenario == SC_IDLE) {
        G.rss0 = server_rss_kib();
        begin_measure(start); /* CPU figures then cover connecting and settling */
    }

    if (cfg.scenario == SC_HANDSHAKE) {
        G.phase = cfg.warmup > 0 ? PH_WARMUP : PH_MEASURE;
        G.phase_end = start + secs(cfg.warmup > 0 ? cfg.warmup : cfg.duration);
        if (G.phase == PH_MEASURE) begin_measure(start);
        for (int i = 0; i < G.nslots; i++) {
            G.sessions_started++;
            conn_start(G.c[i]);
        }
    } else {
        G.phase = PH_CONNECT;
        pump_connects();
    }

    struct epoll_event evs[1024];
    while (G.phase != PH_EXIT) {
        int n = epoll_wait(G.ep, evs, 1024, 2);
        for (int i = 0; i < n; i++) {
            conn_t *c = G.c[(uint32_t)evs[i].data.u64];
            if (c->gen == (uint32_t)(evs[i].data.u64 >> 32) && c->state != ST_FREE)
                handle(c, evs[i].events);
        }
        tick(now_ns());
    }
    if (!G.t1 && G.t0) end_measure(now_ns());
    report();
    return 0;
}
