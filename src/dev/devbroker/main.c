/*
 * coupon-devbroker: librdkafka's in-memory mock Kafka cluster run as a
 * standalone process, FOR DEVELOPMENT AND TESTS ONLY.
 *
 * THIS IS NOT A KAFKA BROKER. Every message lives in this process's memory
 * and is gone when it exits; there is no disk, no security, no real
 * replication, and the mock implements only the subset of the protocol that
 * librdkafka's own tests need (produce, idempotent and transactional
 * produce, fetch, consumer groups, metadata). Never point production at it.
 *
 * It creates the cluster (brokers listen on 127.0.0.1, on ports the kernel
 * picks), creates the topics, writes the bootstrap list to a file and then
 * serves a unix control socket in the main thread until SIGTERM/SIGINT.
 * The control socket takes one command line per connection and answers one
 * line, "ok ..." or "error <reason>", so tests can take brokers down, add
 * latency or make Produce requests fail. The same binary is the client for
 * that socket: `coupon-devbroker ctl --control PATH <command words...>`.
 *
 * Standalone on purpose: it links librdkafka and libc, nothing of the
 * project's core library.
 */

/* meson passes -D_GNU_SOURCE; a hand build of this one file needs it too
 * (accept4, mkostemp, asprintf, signalfd). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#ifndef CPN_VERSION
#define CPN_VERSION "0.1.0"
#endif

#define PROG "coupon-devbroker"

#define DEFAULT_BROKERS 3
#define DEFAULT_PARTITIONS 6
#define DEFAULT_TOPIC "coupon.issued"
#define MAX_BROKERS 32
#define MAX_PARTITIONS 10000
#define MAX_RTT_MS 600000
#define MAX_PUSHED_ERRORS 100000

/* Control protocol limits: a command is a short line, so a bounded buffer
 * per connection is enough; longer lines are refused, never truncated. */
#define CMD_MAX 1024
#define CMD_MAX_WORDS 8
#define MAX_CLIENTS 32
#define CLIENT_TIMEOUT_MS 5000
#define CTL_REPLY_TIMEOUT_S 30

#define APIKEY_PRODUCE 0

struct options {
        int brokers;
        int partitions;
        char **topics;
        size_t n_topics;
        const char *bootstrap_file;
        const char *control_path;
        bool verbose;
};

struct broker {
        rd_kafka_t *rk;
        rd_kafka_mock_cluster_t *mcluster;
        const struct options *opts;
        char *bootstraps;
        bool *down;             /* indexed by broker id - 1 */
        int rtt_ms;
        uint64_t errors_pushed; /* total since start, for status */
};

struct client {
        int fd;
        size_t len;
        int64_t deadline_ms;
        char buf[CMD_MAX + 1];
};

static int64_t now_ms(void) {
        struct timespec ts;

        if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
                return 0;
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Parses a whole decimal integer in [min, max]; 0 or -EINVAL. */
static int parse_int(const char *s, long min, long max, long *ret) {
        char *end;
        long v;

        if (!s || !*s)
                return -EINVAL;
        errno = 0;
        v = strtol(s, &end, 10);
        if (errno != 0 || *end != '\0' || v < min || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

static bool topic_name_valid(const char *t) {
        size_t n = strlen(t);

        if (n == 0 || n > 249 || strcmp(t, ".") == 0 || strcmp(t, "..") == 0)
                return false;
        for (const char *p = t; *p; p++)
                if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
                        return false;
        return true;
}

/* Adds every name of a comma list; duplicates are dropped. 0, -EINVAL for a
 * bad name (reported on stderr), -ENOMEM. */
static int topics_add_list(struct options *o, const char *list) {
        char *copy, *save = NULL;
        int r = 0;

        copy = strdup(list);
        if (!copy)
                return -ENOMEM;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                bool dup = false;
                char **n;

                while (isspace((unsigned char)*t))
                        t++;
                for (size_t e = strlen(t); e > 0 && isspace((unsigned char)t[e - 1]); e--)
                        t[e - 1] = '\0';
                if (!topic_name_valid(t)) {
                        fprintf(stderr, PROG ": invalid topic name '%s' (1-249 of [A-Za-z0-9._-])\n", t);
                        r = -EINVAL;
                        break;
                }
                for (size_t i = 0; i < o->n_topics; i++)
                        if (strcmp(o->topics[i], t) == 0)
                                dup = true;
                if (dup)
                        continue;
                n = realloc(o->topics, (o->n_topics + 1) * sizeof(*n));
                if (!n) {
                        r = -ENOMEM;
                        break;
                }
                o->topics = n;
                o->topics[o->n_topics] = strdup(t);
                if (!o->topics[o->n_topics]) {
                        r = -ENOMEM;
                        break;
                }
                o->n_topics++;
        }
        free(copy);
        if (r == 0 && o->n_topics == 0) {
                fprintf(stderr, PROG ": empty topic list\n");
                r = -EINVAL;
        }
        return r;
}

static void options_clear(struct options *o) {
        for (size_t i = 0; i < o->n_topics; i++)
                free(o->topics[i]);
        free(o->topics);
        o->topics = NULL;
        o->n_topics = 0;
}

static const char *env_nonempty(const char *name) {
        const char *v = getenv(name);

        return v && *v ? v : NULL;
}

static void usage(FILE *f) {
        fprintf(f,
"Usage: " PROG " [OPTIONS]\n"
"       " PROG " ctl [--control PATH] COMMAND [ARGS...]\n"
"\n"
"  *** FOR DEVELOPMENT AND TESTS ONLY. NOT A KAFKA BROKER. ***\n"
"  librdkafka's in-memory mock cluster run as a process: messages live in\n"
"  memory only and vanish on exit; no disk, no auth, partial protocol.\n"
"  Never use it in production.\n"
"\n"
"Brokers listen on 127.0.0.1 on kernel-chosen ports; the bootstrap list is\n"
"printed to stderr and written to --bootstrap-file. Runs until SIGTERM or\n"
"SIGINT, then removes the control socket and the bootstrap file.\n"
"A topic a client asks for that does not exist is created by the mock\n"
"with its own defaults; the --topic ones get --partitions.\n"
"\n"
"Options (environment fallback in brackets; flags win):\n"
"  --brokers N            number of brokers, ids 1..N, 1-%d (default %d)\n"
"                         [COUPON_DEVBROKER_BROKERS]; replication factor is\n"
"                         min(3, N)\n"
"  --partitions N         partitions per topic, 1-%d (default %d)\n"
"                         [COUPON_DEVBROKER_PARTITIONS]\n"
"  --topic NAME[,NAME..]  topic(s) to create; repeatable. If given, replaces\n"
"                         the default [COUPON_DEVBROKER_TOPIC, else\n"
"                         COUPON_KAFKA_TOPIC, else " DEFAULT_TOPIC "]\n"
"  --bootstrap-file PATH  write the bootstrap list there (atomically, once\n"
"                         the topics exist) [COUPON_DEVBROKER_BOOTSTRAP_FILE]\n"
"  --control PATH         unix socket for fault commands\n"
"                         [COUPON_DEVBROKER_CONTROL]\n"
"  --verbose              also log librdkafka's mock debug output\n"
"  --help, --version\n"
"\n"
"Control commands (one line per connection; reply 'ok ...' or 'error ...'):\n"
"  down [ID]                   take all brokers (or broker ID) down: open\n"
"                              connections are closed, new ones refused;\n"
"                              partition leadership does not move\n"
"  up [ID]                     bring all brokers (or broker ID) back\n"
"  rtt MS                      add MS of latency to every broker's responses\n"
"  produce-errors COUNT [ERR]  the next COUNT Produce requests (any client,\n"
"                              any broker) fail with ERR: a name such as\n"
"                              NOT_LEADER_FOR_PARTITION (the default,\n"
"                              retriable) or MSG_SIZE_TOO_LARGE, or a code\n"
"  clear-errors                drop pending Produce errors\n"
"  status                      brokers, partitions, topics, state, rtt\n"
"  help                        list the commands\n"
"\n"
"ctl mode sends COMMAND to --control (default $COUPON_DEVBROKER_CONTROL),\n"
"prints the reply and exits 0 on 'ok', 1 on 'error', 2 when it cannot\n"
"reach the socket or on bad usage.\n"
"\n"
"Exit status: 0 after a clean shutdown, non-zero with a one-line reason\n"
"when it cannot start (bad option, control socket used by a live process,\n"
"cluster or topic creation failed).\n",
                MAX_BROKERS, DEFAULT_BROKERS, MAX_PARTITIONS, DEFAULT_PARTITIONS);
}

/* 0 to run, 1 when --help/--version was handled, negative on bad usage
 * (already reported). */
static int parse_options(int argc, char **argv, struct options *o) {
        enum { OPT_BROKERS = 256, OPT_PARTITIONS, OPT_TOPIC, OPT_BOOTSTRAP_FILE,
               OPT_CONTROL, OPT_VERBOSE, OPT_HELP, OPT_VERSION };
        static const struct option longopts[] = {
                { "brokers", required_argument, NULL, OPT_BROKERS },
                { "partitions", required_argument, NULL, OPT_PARTITIONS },
                { "topic", required_argument, NULL, OPT_TOPIC },
                { "bootstrap-file", required_argument, NULL, OPT_BOOTSTRAP_FILE },
                { "control", required_argument, NULL, OPT_CONTROL },
                { "verbose", no_argument, NULL, OPT_VERBOSE },
                { "help", no_argument, NULL, OPT_HELP },
                { "version", no_argument, NULL, OPT_VERSION },
                { NULL, 0, NULL, 0 }
        };
        const char *brokers = env_nonempty("COUPON_DEVBROKER_BROKERS");
        const char *partitions = env_nonempty("COUPON_DEVBROKER_PARTITIONS");
        bool topic_flag = false;
        long v;
        int c, r;

        o->brokers = DEFAULT_BROKERS;
        o->partitions = DEFAULT_PARTITIONS;
        o->bootstrap_file = env_nonempty("COUPON_DEVBROKER_BOOTSTRAP_FILE");
        o->control_path = env_nonempty("COUPON_DEVBROKER_CONTROL");

        while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
                switch (c) {
                case OPT_BROKERS:
                        brokers = optarg;
                        break;
                case OPT_PARTITIONS:
                        partitions = optarg;
                        break;
                case OPT_TOPIC:
                        topic_flag = true;
                        r = topics_add_list(o, optarg);
                        if (r < 0)
                                return r;
                        break;
                case OPT_BOOTSTRAP_FILE:
                        o->bootstrap_file = optarg;
                        break;
                case OPT_CONTROL:
                        o->control_path = optarg;
                        break;
                case OPT_VERBOSE:
                        o->verbose = true;
                        break;
                case 'h':
                case OPT_HELP:
                        usage(stdout);
                        return 1;
                case 'V':
                case OPT_VERSION:
                        printf(PROG " %s\n", CPN_VERSION);
                        return 1;
                default:
                        fprintf(stderr, PROG ": bad usage, see --help\n");
                        return -EINVAL;
                }
        }
        if (optind < argc) {
                fprintf(stderr, PROG ": unexpected argument '%s', see --help\n", argv[optind]);
                return -EINVAL;
        }
        if (brokers) {
                if (parse_int(brokers, 1, MAX_BROKERS, &v) < 0) {
                        fprintf(stderr, PROG ": --brokers must be 1-%d, got '%s'\n", MAX_BROKERS, brokers);
                        return -EINVAL;
                }
                o->brokers = (int)v;
        }
        if (partitions) {
                if (parse_int(partitions, 1, MAX_PARTITIONS, &v) < 0) {
                        fprintf(stderr, PROG ": --partitions must be 1-%d, got '%s'\n",
                                MAX_PARTITIONS, partitions);
                        return -EINVAL;
                }
                o->partitions = (int)v;
        }
        if (!topic_flag) {
                const char *t = env_nonempty("COUPON_DEVBROKER_TOPIC");

                if (!t)
                        t = env_nonempty("COUPON_KAFKA_TOPIC");
                r = topics_add_list(o, t ? t : DEFAULT_TOPIC);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int unix_address(const char *path, struct sockaddr_un *sa) {
        memset(sa, 0, sizeof(*sa));
        sa->sun_family = AF_UNIX;
        if (strlen(path) >= sizeof(sa->sun_path))
                return -ENAMETOOLONG;
        strcpy(sa->sun_path, path);
        return 0;
}

/* Binds and listens on @path. A socket file left by a dead process is
 * replaced; one that a live process answers on is not. Returns the fd, or
 * a negative errno with @why set to a reason for the user. */
static int control_listen(const char *path, const char **why) {
        struct sockaddr_un sa;
        int fd, r;

        r = unix_address(path, &sa);
        if (r < 0) {
                *why = "path too long for a unix socket";
                return r;
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
                *why = strerror(errno);
                return -errno;
        }
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                struct stat st;
                int probe;

                if (errno != EADDRINUSE) {
                        r = -errno;
                        *why = strerror(errno);
                        goto fail;
                }
                if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode)) {
                        r = -EEXIST;
                        *why = "path exists and is not a socket";
                        goto fail;
                }
                probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (probe < 0) {
                        r = -errno;
                        *why = strerror(errno);
                        goto fail;
                }
                if (connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
                        close(probe);
                        r = -EADDRINUSE;
                        *why = "in use by a running process (another " PROG "?)";
                        goto fail;
                }
                r = -errno;
                close(probe);
                if (r != -ECONNREFUSED) {
                        *why = strerror(-r);
                        goto fail;
                }
                /* Stale socket of a process that is gone: take it over. */
                if (unlink(path) < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                        r = -errno;
                        *why = strerror(errno);
                        goto fail;
                }
        }
        if (listen(fd, 16) < 0) {
                r = -errno;
                *why = strerror(errno);
                unlink(path);
                goto fail;
        }
        return fd;
fail:
        close(fd);
        return r;
}

/* Writes @content plus a newline to @path through a temporary file in the
 * same folder and rename(), so a reader never sees a partial list. */
static int write_file_atomic(const char *path, const char *content) {
        char *tmp = NULL, *data = NULL;
        size_t len, off = 0;
        int fd, r = 0;

        if (asprintf(&tmp, "%s.XXXXXX", path) < 0)
                return -ENOMEM;
        if (asprintf(&data, "%s\n", content) < 0) {
                free(tmp);
                return -ENOMEM;
        }
        len = strlen(data);
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0) {
                r = -errno;
                goto out;
        }
        while (off < len) {
                ssize_t w = write(fd, data + off, len - off);

                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                off += (size_t)w;
        }
        if (r == 0 && fchmod(fd, 0644) < 0)
                r = -errno;
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0)
                unlink(tmp);
out:
        free(data);
        free(tmp);
        return r;
}

/* librdkafka 2.0.2's mock thread serves its op queue before it drains the
 * queue's wake-up pipe. An op enqueued in that gap loses its wake-up and
 * waits for the thread's 1 s poll timeout, which back-to-back calls (a
 * loop over brokers, or a test sending "down" then "up") hit about every
 * other time. Pausing a few ms after each op lets the thread drain the pipe
 * first; a wake-up lost anyway costs up to a second, never correctness. */
static void mock_settle(void) {
        struct timespec ts = { .tv_sec = 0, .tv_nsec = 5 * 1000 * 1000 };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
        (void)rk;
        (void)level;
        fprintf(stderr, PROG ": rdkafka %s: %s\n", fac, buf);
}

/* Creates the owner handle, the cluster and its topics. On failure prints
 * one line and returns negative; broker_destroy() cleans up either way. */
static int broker_start(struct broker *b, const struct options *o) {
        char errstr[512];
        rd_kafka_conf_t *conf;
        const char *bs;
        int rf = o->brokers < 3 ? o->brokers : 3;

        b->opts = o;
        b->down = calloc((size_t)o->brokers, sizeof(*b->down));
        if (!b->down) {
                fprintf(stderr, PROG ": out of memory\n");
                return -ENOMEM;
        }

        conf = rd_kafka_conf_new();
        if (!conf) {
                fprintf(stderr, PROG ": out of memory\n");
                return -ENOMEM;
        }
        rd_kafka_conf_set_log_cb(conf, log_cb);
        /* This handle only owns the cluster and never connects anywhere;
         * keep its own notices (no bootstrap.servers, ...) out of the log. */
        if (rd_kafka_conf_set(conf, "log_level", o->verbose ? "7" : "4",
                              errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK ||
            (o->verbose && rd_kafka_conf_set(conf, "debug", "mock", errstr,
                                             sizeof(errstr)) != RD_KAFKA_CONF_OK) ||
            rd_kafka_conf_set(conf, "client.id", PROG, errstr,
                              sizeof(errstr)) != RD_KAFKA_CONF_OK) {
                fprintf(stderr, PROG ": cannot configure librdkafka: %s\n", errstr);
                rd_kafka_conf_destroy(conf);
                return -EINVAL;
        }
        b->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!b->rk) {
                /* rd_kafka_new() destroys nothing on failure: conf is ours */
                rd_kafka_conf_destroy(conf);
                fprintf(stderr, PROG ": cannot create librdkafka handle: %s\n", errstr);
                return -EIO;
        }

        b->mcluster = rd_kafka_mock_cluster_new(b->rk, o->brokers);
        if (!b->mcluster) {
                fprintf(stderr, PROG ": cannot create the mock cluster (%d brokers)\n", o->brokers);
                return -EIO;
        }
        for (size_t i = 0; i < o->n_topics; i++) {
                rd_kafka_resp_err_t err;

                err = rd_kafka_mock_topic_create(b->mcluster, o->topics[i], o->partitions, rf);
                mock_settle();
                if (err) {
                        fprintf(stderr, PROG ": cannot create topic %s: %s\n", o->topics[i],
                                rd_kafka_err2str(err));
                        return -EIO;
                }
        }
        bs = rd_kafka_mock_cluster_bootstraps(b->mcluster);
        b->bootstraps = strdup(bs ? bs : "");
        if (!b->bootstraps) {
                fprintf(stderr, PROG ": out of memory\n");
                return -ENOMEM;
        }
        return 0;
}

static void broker_destroy(struct broker *b) {
        if (b->mcluster)
                rd_kafka_mock_cluster_destroy(b->mcluster);
        b->mcluster = NULL;
        if (b->rk)
                rd_kafka_destroy(b->rk);
        b->rk = NULL;
        free(b->bootstraps);
        b->bootstraps = NULL;
        free(b->down);
        b->down = NULL;
}

/* Error name (with or without the RD_KAFKA_RESP_ERR_ prefix, any case) or
 * numeric code to an error code; 0 or -EINVAL. NO_ERROR is refused: it
 * would not be a fault. */
static int parse_kafka_error(const char *s, rd_kafka_resp_err_t *ret) {
        const struct rd_kafka_err_desc *descs;
        size_t cnt;
        long v;

        if (parse_int(s, INT16_MIN, INT16_MAX, &v) == 0) {
                if (v == 0)
                        return -EINVAL;
                *ret = (rd_kafka_resp_err_t)v;
                return 0;
        }
        if (strncasecmp(s, "RD_KAFKA_RESP_ERR_", 18) == 0)
                s += 18;
        rd_kafka_get_err_descs(&descs, &cnt);
        for (size_t i = 0; i < cnt; i++) {
                if (descs[i].name && descs[i].code != RD_KAFKA_RESP_ERR_NO_ERROR &&
                    strcasecmp(descs[i].name, s) == 0) {
                        *ret = descs[i].code;
                        return 0;
                }
        }
        return -EINVAL;
}

static const char *kafka_error_name(rd_kafka_resp_err_t err) {
        const char *n = rd_kafka_err2name(err);

        return n && *n ? n : "?";
}

/* Applies set_down/set_up to one broker id, or (@id == 0) to all of them
 * in one op with broker id -1, which librdkafka 2.0.2 implements (checked:
 * every listener closes) and which costs one mock op instead of N. */
static int set_brokers_down(struct broker *b, int id, bool down, FILE *out) {
        int32_t target = id ? id : -1;
        rd_kafka_resp_err_t err;

        err = down ? rd_kafka_mock_broker_set_down(b->mcluster, target)
                   : rd_kafka_mock_broker_set_up(b->mcluster, target);
        mock_settle();
        if (err) {
                fprintf(out, "error %s: %s", id ? "broker" : "brokers", rd_kafka_err2str(err));
                return -EIO;
        }
        for (int i = 1; i <= b->opts->brokers; i++)
                if (!id || i == id)
                        b->down[i - 1] = down;
        if (id)
                fprintf(out, "ok broker %d %s", id, down ? "down" : "up");
        else
                fprintf(out, "ok all %d brokers %s", b->opts->brokers, down ? "down" : "up");
        return 0;
}

static void print_status(struct broker *b, FILE *out) {
        int n_down = 0;
        bool first = true;

        for (int i = 0; i < b->opts->brokers; i++)
                n_down += b->down[i];
        fprintf(out, "ok brokers=%d partitions=%d replication=%d topic=", b->opts->brokers,
                b->opts->partitions, b->opts->brokers < 3 ? b->opts->brokers : 3);
        for (size_t i = 0; i < b->opts->n_topics; i++)
                fprintf(out, "%s%s", i ? "," : "", b->opts->topics[i]);
        fprintf(out, " state=%s down=",
                n_down == 0 ? "up" : n_down == b->opts->brokers ? "down" : "partial");
        for (int i = 0; i < b->opts->brokers; i++) {
                if (!b->down[i])
                        continue;
                fprintf(out, "%s%d", first ? "" : ",", i + 1);
                first = false;
        }
        if (first)
                fputs("none", out);
        fprintf(out, " rtt=%d errors_pushed=%llu bootstrap=%s", b->rtt_ms,
                (unsigned long long)b->errors_pushed, b->bootstraps);
}

/* Runs one command line; writes exactly one reply line (without its
 * newline) to @out. */
static void run_command(struct broker *b, char *line, FILE *out) {
        char *argv[CMD_MAX_WORDS + 1];
        char *save = NULL;
        int argc = 0;
        long v;

        for (char *w = strtok_r(line, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save)) {
                if (argc == CMD_MAX_WORDS) {
                        fputs("error too many words", out);
                        return;
                }
                argv[argc++] = w;
        }
        if (argc == 0) {
                fputs("error empty command", out);
                return;
        }

        if (strcmp(argv[0], "down") == 0 || strcmp(argv[0], "up") == 0) {
                bool down = argv[0][0] == 'd';

                if (argc > 2) {
                        fprintf(out, "error usage: %s [broker-id]", argv[0]);
                        return;
                }
                v = 0;
                if (argc == 2 && parse_int(argv[1], 1, b->opts->brokers, &v) < 0) {
                        fprintf(out, "error broker id must be 1-%d", b->opts->brokers);
                        return;
                }
                (void)set_brokers_down(b, (int)v, down, out);
        } else if (strcmp(argv[0], "rtt") == 0) {
                if (argc != 2 || parse_int(argv[1], 0, MAX_RTT_MS, &v) < 0) {
                        fprintf(out, "error usage: rtt <ms 0-%d>", MAX_RTT_MS);
                        return;
                }
                rd_kafka_resp_err_t err = rd_kafka_mock_broker_set_rtt(b->mcluster, -1, (int)v);

                mock_settle();
                if (err) {
                        fprintf(out, "error rtt: %s", rd_kafka_err2str(err));
                        return;
                }
                b->rtt_ms = (int)v;
                fprintf(out, "ok rtt %ld", v);
        } else if (strcmp(argv[0], "produce-errors") == 0) {
                rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION;
                rd_kafka_resp_err_t *errs;

                if (argc < 2 || argc > 3 || parse_int(argv[1], 1, MAX_PUSHED_ERRORS, &v) < 0) {
                        fprintf(out, "error usage: produce-errors <count 1-%d> [error-name-or-code]",
                                MAX_PUSHED_ERRORS);
                        return;
                }
                if (argc == 3 && parse_kafka_error(argv[2], &err) < 0) {
                        fprintf(out, "error unknown Kafka error '%s'", argv[2]);
                        return;
                }
                errs = calloc((size_t)v, sizeof(*errs));
                if (!errs) {
                        fputs("error out of memory", out);
                        return;
                }
                for (long i = 0; i < v; i++)
                        errs[i] = err;
                rd_kafka_mock_push_request_errors_array(b->mcluster, APIKEY_PRODUCE, (size_t)v, errs);
                mock_settle();
                free(errs);
                b->errors_pushed += (uint64_t)v;
                fprintf(out, "ok produce-errors %ld %s (%d)", v, kafka_error_name(err), (int)err);
        } else if (strcmp(argv[0], "clear-errors") == 0) {
                if (argc != 1) {
                        fputs("error usage: clear-errors", out);
                        return;
                }
                rd_kafka_mock_clear_request_errors(b->mcluster, APIKEY_PRODUCE);
                mock_settle();
                fputs("ok cleared", out);
        } else if (strcmp(argv[0], "status") == 0) {
                print_status(b, out);
        } else if (strcmp(argv[0], "help") == 0) {
                fputs("ok commands: down [id] | up [id] | rtt <ms> | "
                      "produce-errors <count> [error] | clear-errors | status | help", out);
        } else {
                fputs("error unknown command (try help)", out);
        }
}

static void client_close(struct client *c) {
        if (c->fd >= 0)
                close(c->fd);
        c->fd = -1;
        c->len = 0;
}

static void client_reply(struct client *c, const char *reply, size_t len) {
        size_t off = 0;

        /* Replies are short and the socket buffer is empty: one send()
         * normally takes all of it. A peer that does not read is dropped
         * rather than allowed to stall the loop. */
        while (off < len) {
                ssize_t n = send(c->fd, reply + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                off += (size_t)n;
        }
        client_close(c);
}

static void client_finish(struct broker *b, struct client *c, bool too_long) {
        char *reply = NULL;
        size_t len = 0;
        FILE *out;

        out = open_memstream(&reply, &len);
        if (!out) {
                static const char oom[] = "error out of memory\n";

                client_reply(c, oom, sizeof(oom) - 1);
                return;
        }
        if (too_long) {
                fprintf(out, "error command longer than %d bytes", CMD_MAX);
        } else {
                char *nl = memchr(c->buf, '\n', c->len);

                if (nl)
                        *nl = '\0';
                c->buf[c->len < CMD_MAX ? c->len : CMD_MAX] = '\0';
                run_command(b, c->buf, out);
        }
        fputc('\n', out);
        if (fclose(out) != 0 || !reply) {
                static const char oom[] = "error out of memory\n";

                free(reply);
                client_reply(c, oom, sizeof(oom) - 1);
                return;
        }
        client_reply(c, reply, len);
        free(reply);
}

static void client_read(struct broker *b, struct client *c) {
        ssize_t n;

        n = read(c->fd, c->buf + c->len, CMD_MAX - c->len);
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return;
                client_close(c);
                return;
        }
        if (n == 0) {
                /* EOF without newline: the line ends here */
                if (c->len == 0)
                        client_close(c);
                else
                        client_finish(b, c, false);
                return;
        }
        c->len += (size_t)n;
        if (memchr(c->buf, '\n', c->len))
                client_finish(b, c, false);
        else if (c->len == CMD_MAX)
                client_finish(b, c, true);
}

/* Serves the control socket until a termination signal. Returns 0, or a
 * negative errno if poll() itself fails. */
static int serve(struct broker *b, int sfd, int lfd) {
        struct client clients[MAX_CLIENTS];
        struct pollfd pfd[2 + MAX_CLIENTS];
        int r = 0;

        for (size_t i = 0; i < MAX_CLIENTS; i++)
                clients[i].fd = -1;

        for (;;) {
                int64_t now = now_ms(), next = -1;
                size_t n_clients = 0;
                int timeout, n;

                for (size_t i = 0; i < MAX_CLIENTS; i++) {
                        struct client *c = &clients[i];

                        if (c->fd >= 0 && c->deadline_ms <= now) {
                                static const char slow[] = "error timed out waiting for the command\n";

                                client_reply(c, slow, sizeof(slow) - 1);
                        }
                        pfd[2 + i].fd = c->fd;
                        pfd[2 + i].events = POLLIN;
                        pfd[2 + i].revents = 0;
                        if (c->fd >= 0) {
                                n_clients++;
                                if (next < 0 || c->deadline_ms < next)
                                        next = c->deadline_ms;
                        }
                }
                pfd[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
                /* When every slot is taken, leave new connections queued in
                 * the backlog until one frees up. */
                pfd[1] = (struct pollfd){ .fd = n_clients < MAX_CLIENTS ? lfd : -1, .events = POLLIN };
                timeout = next < 0 ? -1 : next - now > INT_MAX ? INT_MAX : (int)(next - now);

                n = poll(pfd, 2 + MAX_CLIENTS, timeout);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        fprintf(stderr, PROG ": poll: %s\n", strerror(errno));
                        break;
                }

                if (pfd[0].revents) {
                        struct signalfd_siginfo si;
                        ssize_t got = read(sfd, &si, sizeof(si));

                        if (got == (ssize_t)sizeof(si)) {
                                fprintf(stderr, PROG ": %s, shutting down\n", strsignal((int)si.ssi_signo));
                                break;
                        }
                        if (got < 0 && errno != EAGAIN && errno != EINTR) {
                                r = -errno;
                                fprintf(stderr, PROG ": signalfd: %s\n", strerror(errno));
                                break;
                        }
                }

                for (size_t i = 0; i < MAX_CLIENTS; i++)
                        if (clients[i].fd >= 0 && pfd[2 + i].revents)
                                client_read(b, &clients[i]);

                if (pfd[1].fd >= 0 && (pfd[1].revents & POLLIN)) {
                        for (size_t i = 0; i < MAX_CLIENTS; i++) {
                                int fd;

                                if (clients[i].fd >= 0)
                                        continue;
                                fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                                if (fd < 0) {
                                        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                                                fprintf(stderr, PROG ": accept: %s\n", strerror(errno));
                                        break;
                                }
                                clients[i].fd = fd;
                                clients[i].len = 0;
                                clients[i].deadline_ms = now_ms() + CLIENT_TIMEOUT_MS;
                        }
                }
        }

        for (size_t i = 0; i < MAX_CLIENTS; i++)
                client_close(&clients[i]);
        return r;
}

static int run_broker(int argc, char **argv) {
        struct options opts = { 0 };
        struct broker b = { 0 };
        sigset_t mask;
        const char *why = NULL;
        int sfd = -1, lfd = -1, r, exit_code = 1;
        bool wrote_bootstrap = false;

        r = parse_options(argc, argv, &opts);
        if (r != 0) {
                options_clear(&opts);
                return r > 0 ? 0 : 2;
        }

        /* Block the termination signals before librdkafka starts its
         * threads, so they inherit the mask and the signals are only ever
         * seen through the signalfd in this thread. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
                fprintf(stderr, PROG ": sigprocmask: %s\n", strerror(errno));
                goto out;
        }
        if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
                fprintf(stderr, PROG ": cannot ignore SIGPIPE: %s\n", strerror(errno));
                goto out;
        }
        sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sfd < 0) {
                fprintf(stderr, PROG ": signalfd: %s\n", strerror(errno));
                goto out;
        }

        /* The control socket first: a second instance on the same path
         * fails before it builds a cluster. */
        if (opts.control_path) {
                lfd = control_listen(opts.control_path, &why);
                if (lfd < 0) {
                        fprintf(stderr, PROG ": control socket %s: %s\n", opts.control_path, why);
                        goto out;
                }
        }

        if (broker_start(&b, &opts) < 0)
                goto out;

        if (opts.bootstrap_file) {
                r = write_file_atomic(opts.bootstrap_file, b.bootstraps);
                if (r < 0) {
                        fprintf(stderr, PROG ": cannot write bootstrap file %s: %s\n",
                                opts.bootstrap_file, strerror(-r));
                        goto out;
                }
                wrote_bootstrap = true;
        }

        fprintf(stderr, PROG ": DEVELOPMENT ONLY mock Kafka cluster ready: bootstrap %s "
                "(%d brokers, %d partitions, replication %d, topic %s%s) control %s pid %ld\n",
                b.bootstraps, opts.brokers, opts.partitions, opts.brokers < 3 ? opts.brokers : 3,
                opts.topics[0], opts.n_topics > 1 ? " and more" : "",
                opts.control_path ? opts.control_path : "none", (long)getpid());

        /* Without a control socket the loop just waits for the signal. */
        r = serve(&b, sfd, lfd);
        exit_code = r < 0 ? 1 : 0;

out:
        /* Withdraw the advertised addresses before the brokers go away. */
        if (wrote_bootstrap && unlink(opts.bootstrap_file) < 0 && errno != ENOENT)
                fprintf(stderr, PROG ": cannot remove %s: %s\n", opts.bootstrap_file, strerror(errno));
        if (lfd >= 0) {
                close(lfd);
                if (unlink(opts.control_path) < 0 && errno != ENOENT)
                        fprintf(stderr, PROG ": cannot remove %s: %s\n", opts.control_path,
                                strerror(errno));
        }
        broker_destroy(&b);
        if (sfd >= 0)
                close(sfd);
        options_clear(&opts);
        if (exit_code == 0)
                fprintf(stderr, PROG ": stopped\n");
        return exit_code;
}

/* ctl mode: one command, one reply. */
static int run_ctl(int argc, char **argv) {
        enum { OPT_CONTROL = 256, OPT_HELP };
        static const struct option longopts[] = {
                { "control", required_argument, NULL, OPT_CONTROL },
                { "help", no_argument, NULL, OPT_HELP },
                { NULL, 0, NULL, 0 }
        };
        const char *path = env_nonempty("COUPON_DEVBROKER_CONTROL");
        struct sockaddr_un sa;
        struct timeval tv = { .tv_sec = CTL_REPLY_TIMEOUT_S };
        char *cmd = NULL, *reply = NULL;
        size_t cmd_len = 0, reply_len = 0, reply_cap = 0;
        int c, fd = -1, exit_code = 2;
        FILE *out;

        /* '+': stop at the first command word, so "produce-errors 1 -1"
         * keeps its negative code. */
        while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
                switch (c) {
                case OPT_CONTROL:
                        path = optarg;
                        break;
                case 'h':
                case OPT_HELP:
                        usage(stdout);
                        return 0;
                default:
                        fprintf(stderr, PROG " ctl: bad usage, see --help\n");
                        return 2;
                }
        }
        if (!path) {
                fprintf(stderr, PROG " ctl: no --control PATH and COUPON_DEVBROKER_CONTROL is unset\n");
                return 2;
        }
        if (optind >= argc) {
                fprintf(stderr, PROG " ctl: no command given, see --help\n");
                return 2;
        }
        if (unix_address(path, &sa) < 0) {
                fprintf(stderr, PROG " ctl: %s: path too long for a unix socket\n", path);
                return 2;
        }

        out = open_memstream(&cmd, &cmd_len);
        if (!out) {
                fprintf(stderr, PROG " ctl: out of memory\n");
                return 2;
        }
        for (int i = optind; i < argc; i++)
                fprintf(out, "%s%s", i > optind ? " " : "", argv[i]);
        fputc('\n', out);
        if (fclose(out) != 0 || !cmd) {
                fprintf(stderr, PROG " ctl: out of memory\n");
                goto out;
        }

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                fprintf(stderr, PROG " ctl: cannot connect to %s: %s\n", path, strerror(errno));
                goto out;
        }
        if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
                fprintf(stderr, PROG " ctl: setsockopt: %s\n", strerror(errno));
                goto out;
        }
        for (size_t off = 0; off < cmd_len;) {
                ssize_t n = send(fd, cmd + off, cmd_len - off, MSG_NOSIGNAL);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        fprintf(stderr, PROG " ctl: send: %s\n", strerror(errno));
                        goto out;
                }
                off += (size_t)n;
        }
        if (shutdown(fd, SHUT_WR) < 0) {
                fprintf(stderr, PROG " ctl: shutdown: %s\n", strerror(errno));
                goto out;
        }
        for (;;) {
                ssize_t n;

                if (reply_cap - reply_len < 256) {
                        char *nr;

                        if (reply_cap > 1024 * 1024) {
                                fprintf(stderr, PROG " ctl: reply too long\n");
                                goto out;
                        }
                        nr = realloc(reply, reply_cap * 2 + 256);
                        if (!nr) {
                                fprintf(stderr, PROG " ctl: out of memory\n");
                                goto out;
                        }
                        reply = nr;
                        reply_cap = reply_cap * 2 + 256;
                }
                n = recv(fd, reply + reply_len, reply_cap - reply_len - 1, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        fprintf(stderr, PROG " ctl: no reply from %s: %s\n", path,
                                errno == EAGAIN ? "timed out" : strerror(errno));
                        goto out;
                }
                if (n == 0)
                        break;
                reply_len += (size_t)n;
        }
        if (!reply || reply_len == 0) {
                fprintf(stderr, PROG " ctl: empty reply from %s\n", path);
                goto out;
        }
        reply[reply_len] = '\0';
        reply[strcspn(reply, "\n")] = '\0';
        if (printf("%s\n", reply) < 0 || fflush(stdout) != 0) {
                fprintf(stderr, PROG " ctl: cannot write the reply\n");
                goto out;
        }
        exit_code = strncmp(reply, "ok", 2) == 0 && (reply[2] == '\0' || reply[2] == ' ') ? 0 : 1;

out:
        if (fd >= 0)
                close(fd);
        free(cmd);
        free(reply);
        return exit_code;
}

int main(int argc, char **argv) {
        if (argc > 1 && strcmp(argv[1], "ctl") == 0)
                return run_ctl(argc - 1, argv + 1);
        return run_broker(argc, argv);
}
