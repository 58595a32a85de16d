/*
 * cpn-loadgen: a closed-loop HTTP/1.1 load client that times every request.
 *
 * One thread per connection, blocking sockets, one request in flight per
 * connection: send, read the whole answer, send the next.  Unlike wrk, a
 * connection the server never serves is not hidden: its requests run into
 * the per-request timeout, are recorded with status 0 ("indeterminate"),
 * count in the latency percentiles, and the connection is reported in
 * `starved_connections`.  The user sent by request i is a pure function of
 * i and the seed, so an integration test can tell exactly which users were
 * asked for and compare that with the end state in Redis and MySQL.
 *
 * Plain C, POSIX sockets and pthreads only.  The timed path does no
 * allocation except one 64 KiB result block every few thousand requests:
 * the request is assembled in a per-thread buffer and sent with one
 * send(), the answer is read into a per-thread buffer.  Results are kept
 * in memory and written after the run.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#ifndef CPN_VERSION
#define CPN_VERSION "dev"
#endif

#define PROG "cpn-loadgen"

enum {
	RBUF_SIZE = 16384,        /* per-connection read buffer; bounds one header line */
	BODY_CAP = 4096,          /* body bytes kept per answer to find "seq" */
	CHUNK_BYTES = 65536,      /* result block size */
	THREAD_STACK = 65536,
	/* SO_RCVTIMEO counts in jiffies and overshoots by up to ~20 ms, so it
	 * is set this much short of the deadline and the last stretch is
	 * waited for with ppoll(), which is precise; only slow answers get
	 * there.  SLACK is the drift tolerated before SO_RCVTIMEO is re-set. */
	RCVTIMEO_MARGIN_US = 30000,
	RCVTIMEO_SLACK_US = 2000,
	MAX_STATUS = 1000,
};

/* Outcome of a read step. */
enum {
	RD_OK = 1,
	RD_EOF = 0,
	RD_TIMEOUT = -1,
	RD_IO = -2,    /* reset, premature close, send failure */
	RD_PROTO = -3, /* not a parseable HTTP/1.x answer */
	RD_CONNECT = -4,
};

#define NO_SEQ INT64_MIN

struct rec {
	uint64_t user;
	int64_t seq;
	uint64_t start_us;
	uint32_t dur_us;
	uint16_t status;
};

struct chunk {
	struct chunk *next;
	size_t n, cap;
	uint64_t data[]; /* struct rec or uint32_t latencies */
};

struct piece {
	char *s;
	size_t n;
};

struct run {
	/* target */
	struct sockaddr_storage sa;
	socklen_t salen;
	int64_t timeout_ns;

	/* request template: parts[0] {user} parts[1] ... parts[nparts-1],
	 * then, with a body, the Content-Length value, CRLF CRLF and
	 * body_pre <user digits> body_post */
	struct piece *parts;
	size_t nparts;
	const char *prefix;
	size_t prefix_len;
	bool with_body;
	bool no_body_answer; /* HEAD */
	char *body_pre;
	size_t body_pre_len;
	const char *body_post;
	size_t body_post_len;
	size_t wbuf_size;

	/* request sequence */
	bool count_mode;
	uint64_t requests;
	int64_t deadline_ns;
	uint32_t *perm;  /* user of request i, or of i % perm_len when cycling */
	uint64_t perm_len;
	bool perm_cycle;
	double repeat_frac; /* duration mode without --users */
	uint64_t seed;
	bool full_records;  /* --out given */

	atomic_uint_fast64_t next;

	/* start line-up */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned ready;
	bool go, abort;
	int64_t t0_ns;
};

struct worker {
	struct run *run;
	pthread_t tid;
	int fd;
	int64_t rcvtimeo_us; /* what SO_RCVTIMEO is set to on fd */
	char *rb;
	size_t rpos, rlen;
	char *wb;
	char *body; /* NULL unless seq is wanted */
	size_t body_len;
	char ud[24]; /* decimal user number of the current request */
	size_t ud_len;

	struct chunk *head, *tail;
	uint64_t nreq, answered;
	uint64_t connect_errors, unconnected, timeouts, io_errors, proto_errors;
	int64_t last_end_ns;
	uint64_t status_count[MAX_STATUS];
};

static atomic_int stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	atomic_store_explicit(&stop_requested, 1, memory_order_relaxed);
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static uint64_t hash2(uint64_t a, uint64_t b)
{
	uint64_t s = a ^ (b * UINT64_C(0xd6e8feb86659fd93));

	return splitmix64(&s);
}

static size_t fmt_u64(char *out, uint64_t v)
{
	char tmp[24];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

static char *put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

/* ---- user sequence ---------------------------------------------------- */

static uint64_t user_for(const struct run *r, uint64_t i)
{
	if (r->perm)
		return r->perm[r->perm_cycle ? i % r->perm_len : i];
	if (r->repeat_frac > 0) {
		/* Stateless repeats for --duration: request j repeats with
		 * probability repeat_frac, and then takes the user of an earlier
		 * request, followed back to one that was not a repeat. */
		uint64_t j = i;

		while (j > 0) {
			uint64_t h = hash2(r->seed, j);

			if ((double)(h >> 11) * 0x1.0p-53 >= r->repeat_frac)
				break;
			j = hash2(h, r->seed) % j;
		}
		return j;
	}
	return i;
}

/*
 * Count mode: perm[0..requests) holds every user 0..users-1 once (when
 * requests >= users) plus requests-users seeded random repeats, shuffled
 * over the whole run.  With fewer requests than users, a seeded choice of
 * distinct users.  Duration mode: a seeded permutation of the users that
 * request i cycles through (i % users).  Returns 0, or -ENOMEM.
 */
static int build_perm(struct run *r, uint64_t users)
{
	uint64_t st = r->seed;
	uint64_t len;

	if (!r->count_mode) {
		len = users;
		r->perm_cycle = true;
	} else {
		len = r->requests > users ? r->requests : users;
	}
	r->perm = malloc(len * sizeof(*r->perm));
	if (!r->perm)
		return -ENOMEM;
	r->perm_len = len;
	for (uint64_t k = 0; k < users; k++)
		r->perm[k] = (uint32_t)k;
	for (uint64_t k = users; k < len; k++)
		r->perm[k] = (uint32_t)(splitmix64(&st) % users);
	if (r->count_mode && r->requests < users) {
		for (uint64_t k = 0; k < r->requests; k++) {
			uint64_t j = k + splitmix64(&st) % (users - k);
			uint32_t t = r->perm[k];

			r->perm[k] = r->perm[j];
			r->perm[j] = t;
		}
		return 0;
	}
	for (uint64_t k = len - 1; k > 0; k--) {
		uint64_t j = splitmix64(&st) % (k + 1);
		uint32_t t = r->perm[k];

		r->perm[k] = r->perm[j];
		r->perm[j] = t;
	}
	return 0;
}

/* ---- connections ------------------------------------------------------ */

static int set_timeo(int fd, int optname, int64_t us)
{
	struct timeval tv = { .tv_sec = us / 1000000, .tv_usec = us % 1000000 };

	return setsockopt(fd, SOL_SOCKET, optname, &tv, sizeof(tv));
}

/* SO_RCVTIMEO that open_conn sets for a request timeout of @timeout_us. */
static int64_t rcvtimeo_us(int64_t timeout_us)
{
	return timeout_us > RCVTIMEO_MARGIN_US + 1000 ? timeout_us - RCVTIMEO_MARGIN_US : 1000;
}

/*
 * Connects to @sa before @deadline.  Returns a blocking socket with
 * TCP_NODELAY, a send timeout of @timeout_us and a receive timeout of
 * rcvtimeo_us(@timeout_us), or a negative errno.
 */
static int open_conn(const struct sockaddr *sa, socklen_t salen, int64_t deadline, int64_t timeout_us)
{
	int fd, one = 1, err;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, sa, salen) < 0) {
		if (errno != EINPROGRESS) {
			err = errno;
			goto err_close;
		}
		for (;;) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };
			int64_t rem = deadline - now_ns();
			socklen_t len = sizeof(err);
			int k;

			if (rem <= 0) {
				err = ETIMEDOUT;
				goto err_close;
			}
			k = poll(&pfd, 1, (int)((rem + 999999) / 1000000));
			if (k < 0 && errno != EINTR) {
				err = errno;
				goto err_close;
			}
			if (k <= 0)
				continue;
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
				err = errno;
			if (err)
				goto err_close;
			break;
		}
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0 ||
	    set_timeo(fd, SO_RCVTIMEO, rcvtimeo_us(timeout_us)) < 0 ||
	    set_timeo(fd, SO_SNDTIMEO, timeout_us) < 0) {
		err = errno;
		goto err_close;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
err_close:
	close(fd);
	return -err;
}

static void close_conn(struct worker *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	w->rpos = w->rlen = 0;
}

/* ---- reading an answer ------------------------------------------------ */

/* Reads more bytes into rb.  Returns RD_OK, RD_EOF, RD_TIMEOUT, RD_IO, or
 * RD_PROTO when the unparsed part already fills the buffer. */
static int rd_more(struct worker *w, int64_t deadline)
{
	if (w->rpos == w->rlen) {
		w->rpos = w->rlen = 0;
	} else if (w->rlen == RBUF_SIZE) {
		if (w->rpos == 0)
			return RD_PROTO;
		memmove(w->rb, w->rb + w->rpos, w->rlen - w->rpos);
		w->rlen -= w->rpos;
		w->rpos = 0;
	}
	for (;;) {
		int64_t rem_ns = deadline - now_ns();
		int64_t want_us = rem_ns / 1000 - RCVTIMEO_MARGIN_US;
		ssize_t n;

		if (rem_ns <= 0)
			return RD_TIMEOUT;
		if (want_us <= 0) {
			struct pollfd pfd = { .fd = w->fd, .events = POLLIN };
			struct timespec ts = { .tv_sec = rem_ns / 1000000000,
					       .tv_nsec = rem_ns % 1000000000 };
			int k = ppoll(&pfd, 1, &ts, NULL);

			if (k < 0 && errno != EINTR)
				return RD_IO;
			if (k <= 0)
				continue; /* the loop re-checks the deadline */
		} else if (w->rcvtimeo_us - want_us > RCVTIMEO_SLACK_US ||
			   want_us - w->rcvtimeo_us > RCVTIMEO_SLACK_US) {
			/* Usually there is one recv per answer, right after the
			 * send, and what open_conn set is close enough. */
			if (set_timeo(w->fd, SO_RCVTIMEO, want_us) < 0)
				return RD_IO;
			w->rcvtimeo_us = want_us;
		}
		n = recv(w->fd, w->rb + w->rlen, RBUF_SIZE - w->rlen, 0);
		if (n > 0) {
			w->rlen += (size_t)n;
			return RD_OK;
		}
		if (n == 0)
			return RD_EOF;
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			continue; /* the loop re-checks the deadline */
		return RD_IO;
	}
}

/* Next line, without its CR LF, borrowed until the next read. */
static int rd_line(struct worker *w, int64_t deadline, const char **line, size_t *len)
{
	size_t scanned = 0;

	for (;;) {
		const char *start = w->rb + w->rpos;
		const char *nl = memchr(start + scanned, '\n', w->rlen - w->rpos - scanned);
		int rc;

		if (nl) {
			size_t n = (size_t)(nl - start);

			w->rpos += n + 1;
			if (n > 0 && start[n - 1] == '\r')
				n--;
			*line = start;
			*len = n;
			return RD_OK;
		}
		scanned = w->rlen - w->rpos;
		rc = rd_more(w, deadline);
		if (rc != RD_OK)
			return rc == RD_EOF ? RD_IO : rc;
	}
}

static void keep_body(struct worker *w, const char *p, size_t n)
{
	if (!w->body || w->body_len >= BODY_CAP)
		return;
	if (n > BODY_CAP - w->body_len)
		n = BODY_CAP - w->body_len;
	memcpy(w->body + w->body_len, p, n);
	w->body_len += n;
}

/* Consumes exactly @n body bytes. */
static int rd_body(struct worker *w, int64_t deadline, uint64_t n)
{
	while (n > 0) {
		size_t avail = w->rlen - w->rpos;

		if (avail == 0) {
			int rc = rd_more(w, deadline);

			if (rc != RD_OK)
				return rc == RD_EOF ? RD_IO : rc;
			continue;
		}
		if (avail > n)
			avail = (size_t)n;
		keep_body(w, w->rb + w->rpos, avail);
		w->rpos += avail;
		n -= avail;
	}
	return RD_OK;
}

static int rd_to_eof(struct worker *w, int64_t deadline)
{
	for (;;) {
		int rc;

		keep_body(w, w->rb + w->rpos, w->rlen - w->rpos);
		w->rpos = w->rlen;
		rc = rd_more(w, deadline);
		if (rc == RD_EOF)
			return RD_OK;
		if (rc != RD_OK)
			return rc;
	}
}

static int rd_chunked(struct worker *w, int64_t deadline)
{
	for (;;) {
		const char *line;
		size_t len, i = 0;
		uint64_t size = 0;
		int rc;

		rc = rd_line(w, deadline, &line, &len);
		if (rc != RD_OK)
			return rc;
		for (; i < len; i++) {
			char c = line[i];
			unsigned v;

			if (c >= '0' && c <= '9')
				v = (unsigned)(c - '0');
			else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
				v = (unsigned)((c | 0x20) - 'a' + 10);
			else
				break;
			if (size > (UINT64_MAX >> 4))
				return RD_PROTO;
			size = size * 16 + v;
		}
		if (i == 0 || (i < len && line[i] != ';' && line[i] != ' ' && line[i] != '\t'))
			return RD_PROTO;
		if (size == 0) {
			do { /* trailer section up to the empty line */
				rc = rd_line(w, deadline, &line, &len);
				if (rc != RD_OK)
					return rc;
			} while (len > 0);
			return RD_OK;
		}
		rc = rd_body(w, deadline, size);
		if (rc != RD_OK)
			return rc;
		rc = rd_line(w, deadline, &line, &len);
		if (rc != RD_OK)
			return rc;
		if (len != 0)
			return RD_PROTO;
	}
}

static bool name_is(const char *s, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp(s, name, n) == 0;
}

/* Whether the comma-separated header value @v contains @tok. */
static bool has_token(const char *v, size_t n, const char *tok)
{
	size_t i = 0;

	while (i < n) {
		size_t b, e;

		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		b = i;
		while (i < n && v[i] != ',')
			i++;
		e = i;
		while (e > b && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e > b && name_is(v + b, e - b, tok))
			return true;
	}
	return false;
}

/*
 * Reads one complete answer (skipping 1xx interim answers).  On RD_OK sets
 * *status and *close_after (the server will not take another request on
 * this connection).  Any other return leaves the connection unusable.
 */
static int rd_response(struct worker *w, int64_t deadline, int *status, bool *close_after)
{
	for (;;) {
		const char *line;
		size_t len;
		bool chunked = false, other_te = false, have_cl = false, conn_close;
		uint64_t cl = 0;
		int rc, code;

		do { /* a client may ignore empty lines before the status line */
			rc = rd_line(w, deadline, &line, &len);
			if (rc != RD_OK)
				return rc;
		} while (len == 0);
		if (len < 12 || memcmp(line, "HTTP/1.", 7) != 0 ||
		    (line[7] != '0' && line[7] != '1') || line[8] != ' ' ||
		    line[9] < '1' || line[9] > '9' || line[10] < '0' || line[10] > '9' ||
		    line[11] < '0' || line[11] > '9' || (len > 12 && line[12] != ' '))
			return RD_PROTO;
		code = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
		conn_close = line[7] == '0';

		for (;;) {
			const char *colon, *val;
			size_t nlen, vlen;

			rc = rd_line(w, deadline, &line, &len);
			if (rc != RD_OK)
				return rc;
			if (len == 0)
				break;
			colon = memchr(line, ':', len);
			if (!colon)
				return RD_PROTO;
			nlen = (size_t)(colon - line);
			val = colon + 1;
			vlen = len - nlen - 1;
			while (vlen > 0 && (*val == ' ' || *val == '\t'))
				val++, vlen--;
			while (vlen > 0 && (val[vlen - 1] == ' ' || val[vlen - 1] == '\t'))
				vlen--;
			if (name_is(line, nlen, "content-length")) {
				uint64_t v = 0;

				if (vlen == 0)
					return RD_PROTO;
				for (size_t i = 0; i < vlen; i++) {
					if (val[i] < '0' || val[i] > '9' || v > UINT64_MAX / 10 - 1)
						return RD_PROTO;
					v = v * 10 + (uint64_t)(val[i] - '0');
				}
				if (have_cl && v != cl)
					return RD_PROTO;
				have_cl = true;
				cl = v;
			} else if (name_is(line, nlen, "transfer-encoding")) {
				if (has_token(val, vlen, "chunked"))
					chunked = true;
				else
					other_te = true;
			} else if (name_is(line, nlen, "connection")) {
				if (has_token(val, vlen, "close"))
					conn_close = true;
				else if (has_token(val, vlen, "keep-alive"))
					conn_close = false;
			}
		}
		if (code < 200) {
			if (code == 101)
				return RD_PROTO; /* never asked for an upgrade */
			continue;
		}

		w->body_len = 0;
		if (w->run->no_body_answer || code == 204 || code == 304) {
			rc = RD_OK;
		} else if (chunked) {
			rc = rd_chunked(w, deadline);
		} else if (have_cl && !other_te) {
			rc = rd_body(w, deadline, cl);
		} else {
			rc = rd_to_eof(w, deadline);
			conn_close = true;
		}
		if (rc != RD_OK)
			return rc;
		*status = code;
		*close_after = conn_close;
		return RD_OK;
	}
}

static int64_t find_seq(const char *b, size_t n)
{
	const char *p = memmem(b, n, "\"seq\":", 6);
	const char *end = b + n;
	bool neg = false;
	int64_t v = 0;

	if (!p)
		return NO_SEQ;
	p += 6;
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	if (p < end && *p == '-')
		neg = true, p++;
	if (p >= end || *p < '0' || *p > '9')
		return NO_SEQ;
	while (p < end && *p >= '0' && *p <= '9') {
		if (v > (INT64_MAX - 9) / 10)
			return NO_SEQ;
		v = v * 10 + (*p++ - '0');
	}
	return neg ? -v : v;
}

/* ---- the timed loop --------------------------------------------------- */

static void *push_slot(struct worker *w, size_t elsize)
{
	struct chunk *c = w->tail;

	if (!c || c->n == c->cap) {
		c = malloc(CHUNK_BYTES);
		if (!c) {
			static const char msg[] = PROG ": out of memory for results\n";

			(void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
			_exit(1);
		}
		c->next = NULL;
		c->n = 0;
		c->cap = (CHUNK_BYTES - sizeof(*c)) / elsize;
		if (w->tail)
			w->tail->next = c;
		else
			w->head = c;
		w->tail = c;
	}
	return (char *)c->data + c->n++ * elsize;
}

static size_t build_request(struct worker *w)
{
	const struct run *r = w->run;
	char *p = w->wb;

	for (size_t k = 0; k < r->nparts; k++) {
		if (k > 0) {
			p = put(p, r->prefix, r->prefix_len);
			p = put(p, w->ud, w->ud_len);
		}
		p = put(p, r->parts[k].s, r->parts[k].n);
	}
	if (r->with_body) {
		p += fmt_u64(p, r->body_pre_len + w->ud_len + r->body_post_len);
		p = put(p, "\r\n\r\n", 4);
		p = put(p, r->body_pre, r->body_pre_len);
		p = put(p, w->ud, w->ud_len);
		p = put(p, r->body_post, r->body_post_len);
	}
	return (size_t)(p - w->wb);
}

static int send_all(int fd, const char *b, size_t n)
{
	while (n > 0) {
		ssize_t k = send(fd, b, n, MSG_NOSIGNAL);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return (errno == EAGAIN || errno == EWOULDBLOCK) ? RD_TIMEOUT : RD_IO;
		}
		b += k;
		n -= (size_t)k;
	}
	return RD_OK;
}

/*
 * Opens w->fd, retrying with backoff until @deadline: nothing was sent, so
 * a refused connect (server restarting) is safe to retry, and backing off
 * keeps a dead server from turning every connection into a busy loop.
 * Returns RD_OK or RD_CONNECT.
 */
static int connect_until(struct worker *w, int64_t deadline)
{
	const struct run *r = w->run;
	int64_t backoff = 1000000;

	for (;;) {
		int fd = open_conn((const struct sockaddr *)&r->sa, r->salen, deadline,
				   r->timeout_ns / 1000);
		int64_t rem;

		if (fd >= 0) {
			w->fd = fd;
			w->rcvtimeo_us = rcvtimeo_us(r->timeout_ns / 1000);
			return RD_OK;
		}
		w->connect_errors++;
		rem = deadline - now_ns();
		if (rem <= 0 || atomic_load_explicit(&stop_requested, memory_order_relaxed))
			return RD_CONNECT;
		if (backoff > rem)
			backoff = rem;
		{
			struct timespec ts = { .tv_sec = backoff / 1000000000,
					       .tv_nsec = backoff % 1000000000 };

			clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
		}
		backoff = backoff * 2 > 100000000 ? 100000000 : backoff * 2;
	}
}

static void do_request(struct worker *w, uint64_t i, int64_t start)
{
	struct run *r = w->run;
	int64_t deadline = start + r->timeout_ns;
	uint64_t user = user_for(r, i);
	int status = 0, rc;
	bool close_after = false;
	int64_t end, seq = NO_SEQ;
	uint64_t start_us, end_us;

	w->ud_len = fmt_u64(w->ud, user);
	for (int attempt = 0;; attempt++) {
		bool fresh = w->fd < 0;

		if (fresh) {
			rc = connect_until(w, deadline);
			if (rc != RD_OK)
				break;
		}
		rc = send_all(w->fd, w->wb, build_request(w));
		/* A failed send means the server cannot have the whole request,
		 * so a connection that died while kept alive is replaced once. */
		if (rc == RD_IO && !fresh && attempt == 0) {
			close_conn(w);
			continue;
		}
		if (rc == RD_OK)
			rc = rd_response(w, deadline, &status, &close_after);
		break;
	}
	if (rc != RD_OK) {
		/* No (complete) answer: indeterminate, and the connection's state
		 * is unknown, so it is never reused. */
		status = 0;
		close_conn(w);
		switch (rc) {
		case RD_CONNECT: w->unconnected++; break;
		case RD_TIMEOUT: w->timeouts++; break;
		case RD_PROTO: w->proto_errors++; break;
		default: w->io_errors++; break;
		}
	} else {
		w->answered++;
		if (w->body)
			seq = find_seq(w->body, w->body_len);
		if (close_after)
			close_conn(w);
	}
	end = now_ns();
	w->last_end_ns = end;
	w->nreq++;
	w->status_count[status]++;

	start_us = (uint64_t)(start - r->t0_ns) / 1000;
	end_us = (uint64_t)(end - r->t0_ns) / 1000;
	if (end_us - start_us > UINT32_MAX)
		end_us = start_us + UINT32_MAX;
	if (r->full_records) {
		struct rec *rec = push_slot(w, sizeof(*rec));

		rec->user = user;
		rec->seq = seq;
		rec->start_us = start_us;
		rec->dur_us = (uint32_t)(end_us - start_us);
		rec->status = (uint16_t)status;
	} else {
		*(uint32_t *)push_slot(w, sizeof(uint32_t)) = (uint32_t)(end_us - start_us);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct run *r = w->run;
	int fd;
	bool abort_run;

	/* Connect before the clock starts, like a pool warmed up ahead of
	 * the traffic; a failure here is retried by the first request. */
	fd = open_conn((const struct sockaddr *)&r->sa, r->salen, now_ns() + r->timeout_ns,
		       r->timeout_ns / 1000);
	if (fd >= 0) {
		w->fd = fd;
		w->rcvtimeo_us = rcvtimeo_us(r->timeout_ns / 1000);
	} else {
		w->connect_errors++;
	}

	pthread_mutex_lock(&r->mu);
	r->ready++;
	pthread_cond_broadcast(&r->cv);
	while (!r->go)
		pthread_cond_wait(&r->cv, &r->mu);
	abort_run = r->abort;
	pthread_mutex_unlock(&r->mu);

	while (!abort_run && !atomic_load_explicit(&stop_requested, memory_order_relaxed)) {
		int64_t start = now_ns();
		uint64_t i;

		if (!r->count_mode && start >= r->deadline_ns)
			break;
		i = atomic_fetch_add_explicit(&r->next, 1, memory_order_relaxed);
		if (r->count_mode && i >= r->requests)
			break;
		do_request(w, i, start);
	}
	close_conn(w);
	return NULL;
}

/* ---- setup ------------------------------------------------------------ */

static void usage(FILE *f)
{
	fputs(
"Usage: " PROG " --campaign ID [options]\n"
"\n"
"Closed-loop HTTP/1.1 load client that times every request.  Each of\n"
"--connections threads owns one keep-alive connection and sends one request\n"
"at a time: send, read the whole answer, send the next.  Request i (0-based,\n"
"one counter shared by all connections) is\n"
"  POST /v1/campaigns/<campaign>/issue\n"
"  Content-Type: application/json\n"
"  {\"user_id\":\"<prefix><k>\"}\n"
"\n"
"Options:\n"
"  --addr HOST:PORT     server (default 127.0.0.1:8080; [v6addr]:port works)\n"
"  --campaign ID        replaces {campaign} in --path (required if it is used)\n"
"  --connections N      connections, one thread each (default 200, max 100000)\n"
"  --requests N         send N requests in all, then stop (default 20000)\n"
"  --duration SECONDS   instead of --requests: start requests until SECONDS\n"
"                       (fractions allowed) have passed, then finish in-flight\n"
"  --users N            draw users from <prefix>0 .. <prefix>N-1 (see below)\n"
"  --user-prefix STR    user id prefix (default u-)\n"
"  --repeat-frac F      without --users: fraction 0..1 of requests that repeat\n"
"                       an earlier user (default 0)\n"
"  --seed S             seed of the user sequence (default 1)\n"
"  --out FILE           one line per request, written after the run:\n"
"                       user TAB status TAB seq TAB start_us TAB end_us\n"
"                       (seq: \"seq\": of the answer body, or -; times in us\n"
"                       since the run started; sorted by start_us)\n"
"  --path TEMPLATE      request path (default /v1/campaigns/{campaign}/issue);\n"
"                       {campaign} and {user} are replaced\n"
"  --method M           HTTP method (default POST); the JSON body is sent for\n"
"                       POST, PUT and PATCH only\n"
"  --timeout-ms MS      per request, connect included (default 5000)\n"
"  -h, --help           this text\n"
"  -V, --version        version\n"
"\n"
"Users (k for request i; the same seed gives the same k for every i):\n"
"  no --users             k = i: every request a new user (benchmarks)\n"
"  --users N, --requests  a seeded sequence in which each of the N users\n"
"                         appears at least once (all distinct if requests<N)\n"
"                         and the other requests-N are seeded random repeats,\n"
"                         shuffled over the whole run so that repeats race\n"
"                         with first requests\n"
"  --users N, --duration  request i takes position i mod N of a seeded\n"
"                         permutation of the N users\n"
"  --repeat-frac F, --requests  same as --users requests-round(requests*F)\n"
"  --repeat-frac F, --duration  request i repeats with probability F the user\n"
"                         of a seeded earlier request, else k = i\n"
"\n"
"Every request has --timeout-ms from its start, connect included, to get\n"
"a complete answer.  A refused or failed connect is retried with backoff\n"
"(1 ms doubling to 100 ms) within that time, as is a send that fails on a\n"
"kept-alive connection (the server cannot have the request then).  A\n"
"request that gets no complete answer in time, a receive error, a close or\n"
"an unparseable answer has status 0 (indeterminate: the server may or may\n"
"not have acted on it), is not retried, and its connection is closed; the\n"
"next request reconnects.  An answer is read to its end (Content-Length,\n"
"chunked, or close-delimited); after Connection: close, an HTTP/1.0 answer\n"
"without keep-alive, or a close-delimited body the next request reconnects.\n"
"\n"
"Summary on stdout, one key=value per line:\n"
"  requests             requests recorded (the --out lines)\n"
"  duration_s, rps      from the start signal to the last answer\n"
"  status_<code>        per status seen; status_0 (indeterminate) always\n"
"  p50_ms p90_ms p99_ms p999_ms max_ms\n"
"                       latency of every request, status 0 included\n"
"  connect_errors       failed connect attempts\n"
"  starved_connections  connections that got no answer (status other than\n"
"                       0) in the whole run\n"
"  connections          --connections\n"
"  unconnected timeouts io_errors protocol_errors\n"
"                       why requests got status 0: no connection in time,\n"
"                       no complete answer in time, reset or close, bad HTTP\n"
"  conn_answered_min, conn_answered_max\n"
"                       fewest and most answers one connection got\n"
"  t0_monotonic_ns      the start signal on CLOCK_MONOTONIC (the zero of\n"
"                       --out's times), to line them up with other clocks\n"
"\n"
"Exit status: 0 the run completed (whatever the statuses), 1 setup failure\n"
"(cannot resolve or connect, out of memory, --out not writable),\n"
"2 usage error.\n", f);
}

__attribute__((format(printf, 1, 2), noreturn))
static void usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry '" PROG " --help'.\n", stderr);
	exit(2);
}

__attribute__((format(printf, 1, 2), noreturn))
static void fail(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static uint64_t parse_u64(const char *name, const char *s, uint64_t min, uint64_t max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	if (*s < '0' || *s > '9')
		usage_error("--%s: not a number: '%s'", name, s);
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		usage_error("--%s: '%s' is not in %" PRIu64 "..%" PRIu64, name, s, min, max);
	return v;
}

static double parse_double(const char *name, const char *s, double min, double max)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || *end || errno || !isfinite(v) || v < min || v > max)
		usage_error("--%s: '%s' is not a number in %g..%g", name, s, min, max);
	return v;
}

static bool is_clean(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f)
			return false;
	return true;
}

/* Copy of @s with every @pat replaced by @rep. */
static char *replace_all(const char *s, const char *pat, const char *rep)
{
	size_t pl = strlen(pat), rl = strlen(rep), cnt = 0;
	const char *p;
	char *out, *o;

	for (p = s; (p = strstr(p, pat)); p += pl)
		cnt++;
	out = malloc(strlen(s) + cnt * rl + 1);
	if (!out)
		fail("out of memory");
	for (o = out, p = s; *p;) {
		if (strncmp(p, pat, pl) == 0) {
			o = put(o, rep, rl);
			p += pl;
		} else {
			*o++ = *p++;
		}
	}
	*o = '\0';
	return out;
}

static char *json_escape(const char *s)
{
	char *out = malloc(strlen(s) * 6 + 1), *o = out;

	if (!out)
		fail("out of memory");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			*o++ = '\\';
			*o++ = (char)c;
		} else if (c < 0x20) {
			static const char hex[] = "0123456789abcdef";

			o = put(o, "\\u00", 4);
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		} else {
			*o++ = (char)c;
		}
	}
	*o = '\0';
	return out;
}

static void build_template(struct run *r, const char *method, const char *path,
			   const char *hostport, const char *prefix)
{
	static const char ctype[] = "Content-Type: application/json\r\nContent-Length: ";
	char *head, *tail, *p;
	size_t head_len, tail_len, k;

	r->with_body = !strcmp(method, "POST") || !strcmp(method, "PUT") || !strcmp(method, "PATCH");
	r->no_body_answer = !strcmp(method, "HEAD");
	r->prefix = prefix;
	r->prefix_len = strlen(prefix);

	/* "METHOD path-with-{user}" then " HTTP/1.1\r\nHost: ...\r\n" ... */
	head_len = strlen(method) + 1 + strlen(path);
	head = malloc(head_len + 1);
	tail_len = strlen(" HTTP/1.1\r\nHost: \r\n") + strlen(hostport) + sizeof(ctype);
	tail = malloc(tail_len + 1);
	if (!head || !tail)
		fail("out of memory");
	snprintf(head, head_len + 1, "%s %s", method, path);
	snprintf(tail, tail_len + 1, " HTTP/1.1\r\nHost: %s\r\n%s", hostport,
		 r->with_body ? ctype : "\r\n");

	r->nparts = 1;
	for (p = head; (p = strstr(p, "{user}")); p += 6)
		r->nparts++;
	r->parts = calloc(r->nparts, sizeof(*r->parts));
	if (!r->parts)
		fail("out of memory");
	for (k = 0, p = head; k < r->nparts; k++) {
		char *q = strstr(p, "{user}");
		size_t n = q ? (size_t)(q - p) : strlen(p);

		r->parts[k].s = malloc(n + (q ? 0 : strlen(tail)) + 1);
		if (!r->parts[k].s)
			fail("out of memory");
		memcpy(r->parts[k].s, p, n);
		r->parts[k].n = n;
		if (!q) {
			memcpy(r->parts[k].s + n, tail, strlen(tail));
			r->parts[k].n += strlen(tail);
		}
		if (q)
			p = q + 6;
	}
	free(head);
	free(tail);

	{
		char *esc = json_escape(prefix);
		size_t n = strlen("{\"user_id\":\"") + strlen(esc);

		r->body_pre = malloc(n + 1);
		if (!r->body_pre)
			fail("out of memory");
		snprintf(r->body_pre, n + 1, "{\"user_id\":\"%s", esc);
		r->body_pre_len = n;
		free(esc);
	}
	r->body_post = "\"}";
	r->body_post_len = 2;

	r->wbuf_size = 64;
	for (k = 0; k < r->nparts; k++)
		r->wbuf_size += r->parts[k].n + r->prefix_len + 24;
	r->wbuf_size += r->body_pre_len + 24 + r->body_post_len;
}

static void parse_addr(const char *addr, char **host, char **port)
{
	const char *colon;
	char *h;

	if (addr[0] == '[') {
		const char *rb = strchr(addr, ']');

		if (!rb || rb[1] != ':' || !rb[2])
			usage_error("--addr: expected [IPv6]:PORT, got '%s'", addr);
		h = strndup(addr + 1, (size_t)(rb - addr - 1));
		colon = rb + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon || colon == addr || !colon[1])
			usage_error("--addr: expected HOST:PORT, got '%s'", addr);
		h = strndup(addr, (size_t)(colon - addr));
	}
	if (!h)
		fail("out of memory");
	*host = h;
	*port = strdup(colon + 1);
	if (!*port)
		fail("out of memory");
}

/* Picks the first address of @addr that accepts a connection. */
static void resolve_and_probe(struct run *r, const char *addr)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res, *ai;
	char *host, *port;
	int rc, err = 0;

	parse_addr(addr, &host, &port);
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0)
		fail("cannot resolve %s: %s", addr, gai_strerror(rc));
	for (ai = res; ai; ai = ai->ai_next) {
		int fd = open_conn(ai->ai_addr, ai->ai_addrlen, now_ns() + r->timeout_ns,
				   r->timeout_ns / 1000);

		if (fd >= 0) {
			close(fd);
			memcpy(&r->sa, ai->ai_addr, ai->ai_addrlen);
			r->salen = ai->ai_addrlen;
			break;
		}
		err = -fd;
	}
	freeaddrinfo(res);
	free(host);
	free(port);
	if (!ai)
		fail("cannot connect to %s: %s", addr, strerror(err));
}

static void raise_nofile(unsigned long connections)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)connections + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		fail("getrlimit: %s", strerror(errno));
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
			fail("%lu connections need %lu file descriptors, hard limit is %lu",
			     connections, (unsigned long)need, (unsigned long)rl.rlim_max);
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			fail("setrlimit(RLIMIT_NOFILE): %s", strerror(errno));
	}
}

/* ---- results ---------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static int cmp_rec(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;

	if (x->start_us != y->start_us)
		return (x->start_us > y->start_us) - (x->start_us < y->start_us);
	return (x->dur_us > y->dur_us) - (x->dur_us < y->dur_us);
}

/* Nearest-rank percentile of sorted @v, in ms. */
static double pct_ms(const uint32_t *v, size_t n, double q)
{
	size_t rank;

	if (n == 0)
		return 0;
	rank = (size_t)ceil(q * (double)n);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1] / 1000.0;
}

static int write_out(FILE *f, const struct rec *recs, size_t n, const char *prefix)
{
	static char buf[1 << 20];

	setvbuf(f, buf, _IOFBF, sizeof(buf));
	for (size_t k = 0; k < n; k++) {
		const struct rec *x = &recs[k];

		if (x->seq == NO_SEQ)
			fprintf(f, "%s%" PRIu64 "\t%u\t-\t%" PRIu64 "\t%" PRIu64 "\n", prefix, x->user,
				(unsigned)x->status, x->start_us, x->start_us + x->dur_us);
		else
			fprintf(f, "%s%" PRIu64 "\t%u\t%" PRId64 "\t%" PRIu64 "\t%" PRIu64 "\n", prefix,
				x->user, (unsigned)x->status, x->seq, x->start_us,
				x->start_us + x->dur_us);
	}
	if (fflush(f) != 0 || ferror(f))
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	enum { OPT_ADDR = 256, OPT_CAMPAIGN, OPT_CONNECTIONS, OPT_REQUESTS, OPT_DURATION, OPT_USERS,
	       OPT_PREFIX, OPT_REPEAT, OPT_SEED, OPT_OUT, OPT_PATH, OPT_TIMEOUT, OPT_METHOD };
	static const struct option longopts[] = {
		{ "addr", required_argument, NULL, OPT_ADDR },
		{ "campaign", required_argument, NULL, OPT_CAMPAIGN },
		{ "connections", required_argument, NULL, OPT_CONNECTIONS },
		{ "requests", required_argument, NULL, OPT_REQUESTS },
		{ "duration", required_argument, NULL, OPT_DURATION },
		{ "users", required_argument, NULL, OPT_USERS },
		{ "user-prefix", required_argument, NULL, OPT_PREFIX },
		{ "repeat-frac", required_argument, NULL, OPT_REPEAT },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "out", required_argument, NULL, OPT_OUT },
		{ "path", required_argument, NULL, OPT_PATH },
		{ "timeout-ms", required_argument, NULL, OPT_TIMEOUT },
		{ "method", required_argument, NULL, OPT_METHOD },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *addr = "127.0.0.1:8080", *campaign = NULL, *prefix = "u-";
	const char *out_path = NULL, *path_tpl = "/v1/campaigns/{campaign}/issue";
	const char *method = "POST";
	uint64_t connections = 200, requests = 20000, users = 0, timeout_ms = 5000;
	double duration = 0, repeat_frac = 0;
	bool have_requests = false, have_duration = false, have_repeat = false;
	struct run *r;
	struct worker *ws;
	FILE *out = NULL;
	pthread_attr_t attr;
	struct sigaction sa;
	size_t created = 0, stack;
	int c, exit_code = 0;

	r = calloc(1, sizeof(*r));
	if (!r)
		fail("out of memory");
	r->seed = 1;

	while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_ADDR: addr = optarg; break;
		case OPT_CAMPAIGN: campaign = optarg; break;
		case OPT_CONNECTIONS: connections = parse_u64("connections", optarg, 1, 100000); break;
		case OPT_REQUESTS:
			requests = parse_u64("requests", optarg, 1, UINT32_MAX);
			have_requests = true;
			break;
		case OPT_DURATION:
			duration = parse_double("duration", optarg, 0.001, 1e7);
			have_duration = true;
			break;
		case OPT_USERS: users = parse_u64("users", optarg, 1, UINT32_MAX); break;
		case OPT_PREFIX: prefix = optarg; break;
		case OPT_REPEAT:
			repeat_frac = parse_double("repeat-frac", optarg, 0, 1);
			have_repeat = true;
			break;
		case OPT_SEED: r->seed = parse_u64("seed", optarg, 0, UINT64_MAX); break;
		case OPT_OUT: out_path = optarg; break;
		case OPT_PATH: path_tpl = optarg; break;
		case OPT_TIMEOUT: timeout_ms = parse_u64("timeout-ms", optarg, 1, 3600000); break;
		case OPT_METHOD: method = optarg; break;
		case 'h': usage(stdout); return 0;
		case 'V': puts(PROG " " CPN_VERSION); return 0;
		default: fputs("Try '" PROG " --help'.\n", stderr); return 2;
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if (have_requests && have_duration)
		usage_error("--requests and --duration exclude each other");
	if (users && have_repeat)
		usage_error("--users and --repeat-frac exclude each other");
	if (path_tpl[0] != '/' || !is_clean(path_tpl))
		usage_error("--path must start with / and contain no spaces or control characters");
	if (strstr(path_tpl, "{campaign}") && !campaign)
		usage_error("--campaign is required");
	if (campaign && (!*campaign || !is_clean(campaign)))
		usage_error("--campaign must be non-empty, without spaces or control characters");
	if (!*method || !is_clean(method))
		usage_error("--method must be a non-empty token");
	if (strstr(path_tpl, "{user}") && !is_clean(prefix))
		usage_error("--user-prefix cannot hold spaces or control characters when --path uses {user}");
	if (!is_clean(addr))
		usage_error("--addr: bad address '%s'", addr);

	r->timeout_ns = (int64_t)timeout_ms * 1000000;
	r->count_mode = !have_duration;
	r->requests = requests;
	r->full_records = out_path != NULL;
	if (have_repeat && repeat_frac > 0) {
		if (r->count_mode) {
			users = requests - (uint64_t)llround((double)requests * repeat_frac);
			if (users < 1)
				users = 1;
		} else {
			r->repeat_frac = repeat_frac;
		}
	}

	{
		char *p = replace_all(path_tpl, "{campaign}", campaign ? campaign : "");

		build_template(r, method, p, addr, prefix);
		free(p);
	}
	if (users && build_perm(r, users) < 0)
		fail("out of memory for the user sequence");

	resolve_and_probe(r, addr);
	if (out_path) {
		out = fopen(out_path, "w");
		if (!out)
			fail("cannot open %s: %s", out_path, strerror(errno));
	}
	raise_nofile(connections);

	ws = calloc(connections, sizeof(*ws));
	if (!ws)
		fail("out of memory");
	for (size_t k = 0; k < connections; k++) {
		ws[k].run = r;
		ws[k].fd = -1;
		ws[k].rb = malloc(RBUF_SIZE);
		ws[k].wb = malloc(r->wbuf_size);
		if (out)
			ws[k].body = malloc(BODY_CAP);
		if (!ws[k].rb || !ws[k].wb || (out && !ws[k].body))
			fail("out of memory");
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESETHAND; /* a second ^C kills */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	atomic_init(&r->next, 0);
	pthread_attr_init(&attr);
	stack = THREAD_STACK;
	{
		long min = sysconf(_SC_THREAD_STACK_MIN);

		if (min > 0 && (size_t)min > stack)
			stack = (size_t)min;
	}
	pthread_attr_setstacksize(&attr, stack);
	for (; created < connections; created++) {
		int rc = pthread_create(&ws[created].tid, &attr, worker_main, &ws[created]);

		if (rc != 0) {
			fprintf(stderr, PROG ": cannot start thread %zu of %" PRIu64 ": %s\n",
				created + 1, connections, strerror(rc));
			exit_code = 1;
			break;
		}
	}
	pthread_attr_destroy(&attr);

	pthread_mutex_lock(&r->mu);
	while (r->ready < created)
		pthread_cond_wait(&r->cv, &r->mu);
	r->t0_ns = now_ns();
	r->deadline_ns = r->t0_ns + (int64_t)(duration * 1e9);
	r->abort = exit_code != 0;
	r->go = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);

	for (size_t k = 0; k < created; k++)
		pthread_join(ws[k].tid, NULL);
	if (exit_code)
		return exit_code;

	{
		uint64_t total = 0, status[MAX_STATUS] = { 0 };
		uint64_t cerr = 0, unconn = 0, tmo = 0, ioe = 0, proto = 0, starved = 0;
		uint64_t amin = UINT64_MAX, amax = 0;
		int64_t last = 0;
		uint32_t *lat;
		struct rec *recs = NULL;
		size_t n = 0;
		double dur_s;

		for (size_t k = 0; k < connections; k++) {
			struct worker *w = &ws[k];

			total += w->nreq;
			for (int s = 0; s < MAX_STATUS; s++)
				status[s] += w->status_count[s];
			cerr += w->connect_errors;
			unconn += w->unconnected;
			tmo += w->timeouts;
			ioe += w->io_errors;
			proto += w->proto_errors;
			if (w->answered == 0)
				starved++;
			if (w->answered < amin)
				amin = w->answered;
			if (w->answered > amax)
				amax = w->answered;
			if (w->nreq && w->last_end_ns > last)
				last = w->last_end_ns;
		}
		if (!last)
			last = now_ns();
		dur_s = (double)(last - r->t0_ns) / 1e9;

		lat = malloc((total ? total : 1) * sizeof(*lat));
		if (out)
			recs = malloc((total ? total : 1) * sizeof(*recs));
		if (!lat || (out && !recs))
			fail("out of memory for results");
		for (size_t k = 0; k < connections; k++) {
			for (struct chunk *ch = ws[k].head, *nx; ch; ch = nx) {
				nx = ch->next;
				if (out) {
					const struct rec *src = (const struct rec *)ch->data;

					for (size_t j = 0; j < ch->n; j++) {
						lat[n] = src[j].dur_us;
						recs[n++] = src[j];
					}
				} else {
					memcpy(lat + n, ch->data, ch->n * sizeof(*lat));
					n += ch->n;
				}
				free(ch);
			}
		}
		qsort(lat, n, sizeof(*lat), cmp_u32);
		if (out) {
			qsort(recs, n, sizeof(*recs), cmp_rec);
			if (write_out(out, recs, n, prefix) < 0 || fclose(out) != 0) {
				fprintf(stderr, PROG ": writing %s: %s\n", out_path, strerror(errno));
				exit_code = 1;
			}
		}

		printf("requests=%" PRIu64 "\n", total);
		printf("duration_s=%.3f\n", dur_s);
		printf("rps=%.1f\n", dur_s > 0 ? (double)total / dur_s : 0.0);
		printf("status_0=%" PRIu64 "\n", status[0]);
		for (int s = 1; s < MAX_STATUS; s++)
			if (status[s])
				printf("status_%d=%" PRIu64 "\n", s, status[s]);
		printf("p50_ms=%.3f\n", pct_ms(lat, n, 0.50));
		printf("p90_ms=%.3f\n", pct_ms(lat, n, 0.90));
		printf("p99_ms=%.3f\n", pct_ms(lat, n, 0.99));
		printf("p999_ms=%.3f\n", pct_ms(lat, n, 0.999));
		printf("max_ms=%.3f\n", n ? lat[n - 1] / 1000.0 : 0.0);
		printf("connect_errors=%" PRIu64 "\n", cerr);
		printf("starved_connections=%" PRIu64 "\n", starved);
		printf("connections=%" PRIu64 "\n", (uint64_t)connections);
		printf("unconnected=%" PRIu64 "\n", unconn);
		printf("timeouts=%" PRIu64 "\n", tmo);
		printf("io_errors=%" PRIu64 "\n", ioe);
		printf("protocol_errors=%" PRIu64 "\n", proto);
		printf("conn_answered_min=%" PRIu64 "\n", amin);
		printf("conn_answered_max=%" PRIu64 "\n", amax);
		printf("t0_monotonic_ns=%" PRId64 "\n", r->t0_ns);
		fflush(stdout);

		free(lat);
		free(recs);
	}

	for (size_t k = 0; k < connections; k++) {
		free(ws[k].rb);
		free(ws[k].wb);
		free(ws[k].body);
	}
	free(ws);
	for (size_t k = 0; k < r->nparts; k++)
		free(r->parts[k].s);
	free(r->parts);
	free(r->body_pre);
	free(r->perm);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	free(r);
	return exit_code;
}
