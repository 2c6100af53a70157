/*
 * bench/stream-load.c: the load readers of `npm run bench -- stream`'s fan-out, in C.
 *
 * The fan-out's clients share the machine's two cores with the server. A Node reader costs ~5 us
 * per message (the event loop, a callback and a Buffer per read), which on this machine is a
 * quarter of what the server has; this one reads with plain epoll and read(2), so what the bench
 * measures is the server, as if its clients were elsewhere. It holds the WebSocket connections,
 * answers pings, counts every presence message and the resync closes, and keeps a histogram of
 * report -> client latency (now - the message's observed_at). The probe subscribers, whose
 * latency is the target's figure, stay a Node client (bench/stream-client.ts).
 *
 * Usage: stream-load HOST PORT KEY FROM[,FROM...] STALL
 *   STALL: index of a connection that stops reading after its snapshot, or -1.
 * Standard input: one line per connection (its comma-separated user ids), then an empty line;
 * then commands, one a line: stats, reset, cpu, close, and `rounds MS` (from then on read in
 * rounds MS apart, as bench/stream-client.ts's `rounds` does; 0: as data arrives). Each answer is one JSON line on standard
 * output: {"ready":N} once every snapshot is in (or {"error":"..."}), {"received":R,"resyncs":S,
 * "p50":..,"p99":..,"max":..}, {"ok":true}, {"cpu":seconds,"lag":0}, {"closed":true}.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define OPENING 200           /* connections being opened at once (the server's backlog is 511) */
#define BUCKETS 60001         /* latency histogram: 1 ms buckets up to 60 s */
#define READ_CHUNK (256 * 1024)

struct conn {
  int fd;
  int upgraded;
  int ready;
  int stall;
  char *list;                 /* its ids, until the request is sent */
  unsigned char *rest;        /* an unfinished frame (or response head) carried to the next read */
  size_t rest_len, rest_cap;
};

static struct conn *conns;
static int count, opened, readied;
/* Read in rounds this far apart once every snapshot is in (0: as data arrives). */
static int read_ms;
static uint64_t received, resyncs;
static uint32_t histogram[BUCKETS];
static struct rusage cpu_from;
static unsigned char chunk[READ_CHUNK];
static const unsigned char PONG[6] = {0x8a, 0x80, 0, 0, 0, 0};

static void die(const char *what) {
  printf("{\"error\":\"%s: %s\"}\n", what, strerror(errno));
  fflush(stdout);
  exit(1);
}

static double wall_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static long days_from_civil(long y, long m, long d) {
  y -= m <= 2;
  long era = (y >= 0 ? y : y - 399) / 400;
  long yoe = y - era * 400;
  long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

/* "2026-12-04T19:30:00.123Z" -> ms since the epoch, or -1. */
static double iso_ms(const unsigned char *s, size_t n) {
  if (n < 24 || s[4] != '-' || s[10] != 'T' || s[19] != '.') return -1;
#define NUM(at, len) ({ long v = 0; for (int i = 0; i < (len); i++) v = v * 10 + (s[(at) + i] - '0'); v; })
  long days = days_from_civil(NUM(0, 4), NUM(5, 2), NUM(8, 2));
  double ms = (((days * 24 + NUM(11, 2)) * 60 + NUM(14, 2)) * 60 + NUM(17, 2)) * 1e3 + NUM(20, 3);
#undef NUM
  return ms;
}

static void late(const unsigned char *frame, size_t len) {
  static const char key[] = "\"observed_at\":\"";
  unsigned char *at = memmem(frame, len, key, sizeof key - 1);
  if (at == NULL) return;
  size_t off = (size_t)(at - frame) + sizeof key - 1;
  double observed = iso_ms(frame + off, len - off);
  if (observed < 0) return;
  double ms = wall_ms() - observed;
  long b = ms < 0 ? 0 : (long)ms;
  histogram[b >= BUCKETS ? BUCKETS - 1 : b] += 1;
}

static void carry(struct conn *c, const unsigned char *p, size_t n) {
  if (n > c->rest_cap) {
    c->rest_cap = n * 2;
    c->rest = realloc(c->rest, c->rest_cap);
    if (c->rest == NULL) die("realloc");
  }
  memmove(c->rest, p, n);
  c->rest_len = n;
}

/* Handles what a read brought; returns 0 to stop reading this connection. */
static int handle(struct conn *c, int epfd, const unsigned char *data, size_t n) {
  unsigned char *joined = NULL;
  const unsigned char *buf = data;
  size_t len = n;
  if (c->rest_len > 0) {
    joined = malloc(c->rest_len + n);
    if (joined == NULL) die("malloc");
    memcpy(joined, c->rest, c->rest_len);
    memcpy(joined + c->rest_len, data, n);
    buf = joined;
    len = c->rest_len + n;
    c->rest_len = 0;
  }
  size_t off = 0;
  int keep = 1;
  if (!c->upgraded) {
    unsigned char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (end == NULL) {
      carry(c, buf, len);
      free(joined);
      return 1;
    }
    if (len < 12 || memcmp(buf + 9, "101", 3) != 0) {
      printf("{\"error\":\"upgrade refused: %.12s\"}\n", buf);
      fflush(stdout);
      exit(1);
    }
    c->upgraded = 1;
    off = (size_t)(end - buf) + 4;
  }
  while (len - off >= 2) {
    int opcode = buf[off] & 0x0f;
    uint64_t plen = buf[off + 1] & 0x7f;
    size_t header = 2;
    if (plen == 126) {
      if (len - off < 4) break;
      plen = ((uint64_t)buf[off + 2] << 8) | buf[off + 3];
      header = 4;
    } else if (plen == 127) {
      if (len - off < 10) break;
      plen = 0;
      for (int i = 0; i < 8; i++) plen = (plen << 8) | buf[off + 2 + i];
      header = 10;
    }
    if (len - off < header + plen) break;
    const unsigned char *p = buf + off + header;
    off += header + plen;
    if (opcode == 1) {
      if (!c->ready && plen >= 18 && memcmp(p, "{\"type\":\"snapshot\"", 18) == 0) {
        c->ready = 1;
        readied += 1;
        if (c->stall) {
          epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL); /* stops reading: the stalled subscriber */
          keep = 0;
          break;
        }
        continue;
      }
      if (plen > 9 && p[9] == 'p') { /* {"type":"p... : presence; anything else is not counted */
        received += 1;
        late(p, plen);
      }
    } else if (opcode == 9) {
      if (write(c->fd, PONG, sizeof PONG) < 0 && errno != EAGAIN) die("write");
    } else if (opcode == 8 && plen >= 2 && ((p[0] << 8) | p[1]) == 4008) {
      resyncs += 1;
    }
  }
  if (keep && off < len) carry(c, buf + off, len - off);
  free(joined);
  return keep;
}

static void start_connect(struct conn *c, int epfd, struct sockaddr_in *to, const char *from) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) die("socket");
  if (from != NULL) {
    struct sockaddr_in local = {.sin_family = AF_INET};
    inet_pton(AF_INET, from, &local.sin_addr);
    if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0) die("bind");
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)to, sizeof *to) < 0 && errno != EINPROGRESS) die("connect");
  c->fd = fd;
  struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
}

static void send_request(struct conn *c, int epfd, const char *host, const char *key) {
  char *req = NULL;
  int n = asprintf(&req,
                   "GET /v1/ws?user_ids=%s&access_token=%s HTTP/1.1\r\nHost: %s\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Key: %08x%08xAAAAAA==\r\n\r\n",
                   c->list, key, host, (unsigned)rand(), (unsigned)rand());
  if (n < 0) die("asprintf");
  if (write(c->fd, req, (size_t)n) != n) die("write request");
  free(req);
  free(c->list);
  c->list = NULL;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl");
}

static void answer(const char *line) {
  if (strcmp(line, "stats") == 0) {
    uint64_t total = 0;
    for (int i = 0; i < BUCKETS; i++) total += histogram[i];
    long p50 = 0, p99 = 0, max = 0;
    uint64_t seen = 0;
    uint64_t want50 = (total + 1) / 2, want99 = (uint64_t)((total * 99 + 99) / 100);
    for (int i = 0; i < BUCKETS; i++) {
      if (histogram[i] == 0) continue;
      seen += histogram[i];
      if (p50 == 0 && seen >= want50) p50 = i;
      if (p99 == 0 && seen >= want99) p99 = i;
      max = i;
    }
    printf("{\"received\":%llu,\"resyncs\":%llu,\"p50\":%ld,\"p99\":%ld,\"max\":%ld}\n",
           (unsigned long long)received, (unsigned long long)resyncs, p50, p99, max);
  } else if (strcmp(line, "reset") == 0) {
    received = 0;
    memset(histogram, 0, sizeof histogram);
    getrusage(RUSAGE_SELF, &cpu_from);
    printf("{\"ok\":true}\n");
  } else if (strcmp(line, "cpu") == 0) {
    struct rusage now;
    getrusage(RUSAGE_SELF, &now);
    double s = (now.ru_utime.tv_sec - cpu_from.ru_utime.tv_sec) + (now.ru_stime.tv_sec - cpu_from.ru_stime.tv_sec) +
               ((now.ru_utime.tv_usec - cpu_from.ru_utime.tv_usec) + (now.ru_stime.tv_usec - cpu_from.ru_stime.tv_usec)) / 1e6;
    printf("{\"cpu\":%.4f,\"lag\":0}\n", s);
  } else if (strncmp(line, "rounds ", 7) == 0) {
    read_ms = atoi(line + 7);
    printf("{\"ok\":true}\n");
  } else if (strcmp(line, "close") == 0) {
    for (int i = 0; i < count; i++) close(conns[i].fd);
    printf("{\"closed\":true}\n");
    fflush(stdout);
    exit(0);
  } else {
    printf("{\"error\":\"unknown command\"}\n");
  }
  fflush(stdout);
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: stream-load HOST PORT KEY FROM[,FROM...] STALL\n");
    return 2;
  }
  const char *host = argv[1];
  const char *key = argv[3];
  int stall = atoi(argv[5]);
  char hostport[128];
  snprintf(hostport, sizeof hostport, "%s:%s", host, argv[2]);
  char *froms[64];
  int nfrom = 0;
  for (char *f = strtok(argv[4], ","); f != NULL && nfrom < 64; f = strtok(NULL, ",")) froms[nfrom++] = f;
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
  if (inet_pton(AF_INET, host, &to.sin_addr) != 1) die("address");

  /* The lists, one line each, up to an empty line. */
  size_t cap = 1024;
  conns = calloc(cap, sizeof *conns);
  char *line = NULL;
  size_t line_cap = 0;
  ssize_t got;
  while ((got = getline(&line, &line_cap, stdin)) > 0) {
    if (line[got - 1] == '\n') line[--got] = '\0';
    if (got == 0) break;
    if ((size_t)count == cap) {
      cap *= 2;
      conns = realloc(conns, cap * sizeof *conns);
      if (conns == NULL) die("realloc");
    }
    memset(&conns[count], 0, sizeof *conns);
    conns[count].list = strdup(line);
    conns[count].stall = count == stall;
    count += 1;
  }

  int epfd = epoll_create1(0);
  if (epfd < 0) die("epoll_create1");
  struct epoll_event in = {.events = EPOLLIN, .data.ptr = NULL}; /* NULL: standard input */
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &in) < 0) die("epoll_ctl stdin");
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  getrusage(RUSAGE_SELF, &cpu_from);

  char command[256];
  size_t command_len = 0;
  int announced = 0;
  struct epoll_event events[1024];
  for (;;) {
    /* Keep OPENING connections being opened until every one is. */
    while (opened < count && opened - readied < OPENING) {
      start_connect(&conns[opened], epfd, &to, nfrom > 0 ? froms[opened % nfrom] : NULL);
      opened += 1;
    }
    if (!announced && readied == count) {
      announced = 1;
      printf("{\"ready\":%d}\n", count);
      fflush(stdout);
    }
    int n = epoll_wait(epfd, events, 1024, announced && read_ms > 0 ? 0 : 100);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; i++) {
      struct conn *c = events[i].data.ptr;
      if (c == NULL) { /* a command */
        ssize_t r = read(0, command + command_len, sizeof command - 1 - command_len);
        if (r == 0) exit(0); /* the bench went away */
        if (r < 0) continue;
        command_len += (size_t)r;
        char *nl;
        while ((nl = memchr(command, '\n', command_len)) != NULL) {
          *nl = '\0';
          answer(command);
          size_t used = (size_t)(nl - command) + 1;
          memmove(command, nl + 1, command_len - used);
          command_len -= used;
        }
        continue;
      }
      if (events[i].events & EPOLLOUT) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err != 0) {
          errno = err;
          die("connect");
        }
        send_request(c, epfd, hostport, key);
        continue;
      }
      for (;;) {
        ssize_t r = read(c->fd, chunk, sizeof chunk);
        if (r > 0) {
          if (!handle(c, epfd, chunk, (size_t)r)) break;
          if ((size_t)r < sizeof chunk) break;
          continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EINTR)) epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        break;
      }
    }
    if (announced && read_ms > 0) usleep((useconds_t)read_ms * 1000);
  }
}
