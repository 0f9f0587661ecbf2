/*
 * usbfs-server: the thinnest userspace USB/IP backend there is, for the VM bench's reference —
 * what any userspace backend on usbfs can reach on this machine (the floor the userspace
 * backend, backend/serve-link.ts on kernel-glue/usbfs.ts, is set against).
 * Usage: usbfs-server ARGS... — run in place of `usbip-qrexec export BUSID ...` (an exportWrap
 * in test/vm/guest/bench-modes.ts): BUSID is the first argument after "export".
 *
 * The link is fd 0 (read) and fd 1 (write). It writes the handshake line "DEVID SPEED\n", then
 * serves USB/IP CMD_SUBMIT / CMD_UNLINK (big-endian, 48-byte headers) with one thread and one
 * poll() on the link and the usbfs fd: a CMD_SUBMIT is one USBDEVFS_SUBMITURB, completions are
 * reaped with USBDEVFS_REAPURBNDELAY when the usbfs fd polls writable, and every RET of one
 * turn leaves in one write. No validation beyond what usbfs itself checks, no statistics:
 * a bench reference, not a product. Bulk, interrupt and control only (an iso CMD_SUBMIT ends
 * the program). Like usbip-host: SET_CONFIGURATION is answered without being sent,
 * SET_INTERFACE is USBDEVFS_SETINTERFACE, CLEAR_FEATURE(ENDPOINT_HALT) USBDEVFS_CLEAR_HALT.
 *
 * USBFS_SERVER_MMAP=1: URB buffers come from memory mmap()ed from the usbfs fd (usbfs's
 * zero-copy buffers: SUBMITURB neither allocates nor copies them, and the reap copies nothing
 * back); a URB larger than a slot, or with no slot free, gets a malloc()ed buffer.
 *
 * Ends at the link's EOF: every interface released and its driver bound again (USBDEVFS_CONNECT).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/usbdevice_fs.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

enum { CMD_SUBMIT = 1, CMD_UNLINK = 2, RET_SUBMIT = 3, RET_UNLINK = 4, HDR = 48 };
enum { SLOT_SIZE = 256 << 10, MAX_SLOTS = 48 };

struct urb {
  struct usbdevfs_urb u;
  uint32_t seqnum;
  int dir_in;
  int control;
  int unlinked;          /* CMD_UNLINK seen: answer RET_UNLINK (unlink_seqnum) instead of RET_SUBMIT */
  uint32_t unlink_seqnum;
  int slot;              /* mmap slot, or -1 (malloc) */
  struct urb *next;
};

static int fd_usb = -1;
static char busid[64];
static int ep_type[32];  /* by (ep number | in << 4): a USBDEVFS_URB_TYPE_* */
static int ifaces[32], n_ifaces;
static struct urb *in_flight;
static unsigned char *slots[MAX_SLOTS];
static int slot_used[MAX_SLOTS], n_slots, use_mmap;

static void die(const char *what) {
  fprintf(stderr, "usbfs-server: %s: %s\n", what, strerror(errno));
  exit(1);
}

static uint32_t be32(const unsigned char *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static void put32(unsigned char *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }

static int read_sysfs(const char *path, char *out, size_t size) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return -1;
  ssize_t n = read(fd, out, size - 1);
  close(fd);
  if (n < 0) return -1;
  out[n] = 0;
  while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' ')) out[--n] = 0;
  return 0;
}

/* the interfaces of the active configuration and their endpoints' types, from sysfs */
static void scan_interfaces(void) {
  DIR *d = opendir("/sys/bus/usb/devices");
  if (d == NULL) die("opendir /sys/bus/usb/devices");
  size_t bl = strlen(busid);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strncmp(e->d_name, busid, bl) != 0 || e->d_name[bl] != ':') continue;
    char p[512], v[64];
    snprintf(p, sizeof p, "/sys/bus/usb/devices/%s/bInterfaceNumber", e->d_name);
    if (read_sysfs(p, v, sizeof v) == 0 && n_ifaces < 32) ifaces[n_ifaces++] = (int)strtol(v, NULL, 16);
    snprintf(p, sizeof p, "/sys/bus/usb/devices/%s", e->d_name);
    DIR *id = opendir(p);
    if (id == NULL) continue;
    struct dirent *f;
    while ((f = readdir(id)) != NULL) {
      if (strncmp(f->d_name, "ep_", 3) != 0) continue;
      int addr = (int)strtol(f->d_name + 3, NULL, 16);
      char tp[1024];
      snprintf(tp, sizeof tp, "%s/%s/type", p, f->d_name);
      if (read_sysfs(tp, v, sizeof v) != 0) continue;
      int t = strcmp(v, "Bulk") == 0 ? USBDEVFS_URB_TYPE_BULK : strcmp(v, "Interrupt") == 0 ? USBDEVFS_URB_TYPE_INTERRUPT : strcmp(v, "Isoc") == 0 ? USBDEVFS_URB_TYPE_ISO : USBDEVFS_URB_TYPE_CONTROL;
      ep_type[(addr & 0xf) | (addr & 0x80 ? 16 : 0)] = t;
    }
    closedir(id);
  }
  closedir(d);
}

static unsigned char *take_buffer(struct urb *r, size_t len) {
  r->slot = -1;
  if (use_mmap && len <= SLOT_SIZE) {
    for (int i = 0; i < MAX_SLOTS; i++) {
      if (i == n_slots) {
        void *m = mmap(NULL, SLOT_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd_usb, 0);
        if (m == MAP_FAILED) break;
        slots[n_slots++] = m;
      }
      if (!slot_used[i]) {
        slot_used[i] = 1;
        r->slot = i;
        return slots[i];
      }
    }
  }
  return malloc(len ? len : 1);
}

static void free_urb(struct urb *r) {
  if (r->slot >= 0) slot_used[r->slot] = 0;
  else free(r->u.buffer);
  free(r);
}

/* output: the RETs of one turn, written at its end */
static struct iovec iov[1024];
static unsigned char hdrs[1024][HDR];
static struct urb *done[1024];
static int n_iov, n_hdr, n_done;

static void flush(void) {
  struct iovec *v = iov;
  int n = n_iov;
  while (n > 0) {
    ssize_t w = writev(1, v, n > IOV_MAX ? IOV_MAX : n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) die("write to the link");
    while (n > 0 && (size_t)w >= v->iov_len) w -= (ssize_t)v++->iov_len, n--;
    if (n > 0) v->iov_base = (char *)v->iov_base + w, v->iov_len -= (size_t)w;
  }
  for (int i = 0; i < n_done; i++) free_urb(done[i]);
  n_iov = n_hdr = n_done = 0;
}

static unsigned char *ret_header(uint32_t command, uint32_t seqnum) {
  if (n_hdr == 1024 || n_iov >= 1022 || n_done == 1024) flush();
  unsigned char *h = hdrs[n_hdr++];
  memset(h, 0, HDR);
  put32(h, command);
  put32(h + 4, seqnum);
  iov[n_iov].iov_base = h;
  iov[n_iov++].iov_len = HDR;
  return h;
}

static void ret_submit(uint32_t seqnum, int status, const unsigned char *data, int actual) {
  unsigned char *h = ret_header(RET_SUBMIT, seqnum);
  put32(h + 20, (uint32_t)status);
  put32(h + 24, (uint32_t)actual);
  if (data != NULL && actual > 0) {
    iov[n_iov].iov_base = (void *)data;
    iov[n_iov++].iov_len = (size_t)actual;
  }
}

static void reap(void) {
  for (;;) {
    struct usbdevfs_urb *u;
    if (ioctl(fd_usb, USBDEVFS_REAPURBNDELAY, &u) < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      die("USBDEVFS_REAPURBNDELAY");
    }
    struct urb *r = (struct urb *)u, **pp = &in_flight;
    while (*pp != r) pp = &(*pp)->next;
    *pp = r->next;
    if (r->unlinked) {
      unsigned char *h = ret_header(RET_UNLINK, r->unlink_seqnum);
      put32(h + 20, (uint32_t)-ECONNRESET);
    } else {
      unsigned char *data = r->dir_in ? (unsigned char *)u->buffer + (r->control ? 8 : 0) : NULL;
      ret_submit(r->seqnum, u->status, data, u->actual_length);
    }
    done[n_done++] = r;
  }
}

/* the requests usbip-host does itself (stub_rx.c): 1 if answered here */
static int special_control(uint32_t seqnum, const unsigned char *s) {
  unsigned type = s[0], req = s[1], value = s[2] | s[3] << 8, index = s[4] | s[5] << 8;
  int rc;
  if (type == 0x00 && req == 9) rc = 0; /* SET_CONFIGURATION: the device keeps its configuration */
  else if (type == 0x01 && req == 11) {
    struct usbdevfs_setinterface si = {index, value};
    rc = ioctl(fd_usb, USBDEVFS_SETINTERFACE, &si) < 0 ? -errno : 0;
  } else if (type == 0x02 && req == 1 && value == 0) {
    unsigned ep = index & 0x8f;
    rc = ioctl(fd_usb, USBDEVFS_CLEAR_HALT, &ep) < 0 ? -errno : 0;
  } else return 0;
  ret_submit(seqnum, rc, NULL, 0);
  return 1;
}

/* one message at `p` (`avail` bytes): its length once it is whole, else 0 */
static size_t handle(const unsigned char *p, size_t avail) {
  if (avail < HDR) return 0;
  uint32_t cmd = be32(p), seqnum = be32(p + 4), dir_in = be32(p + 12), ep = be32(p + 16);
  if (cmd == CMD_UNLINK) {
    uint32_t victim = be32(p + 20);
    struct urb *r = in_flight;
    while (r != NULL && (r->seqnum != victim || r->unlinked)) r = r->next;
    if (r != NULL && ioctl(fd_usb, USBDEVFS_DISCARDURB, &r->u) == 0) {
      r->unlinked = 1;
      r->unlink_seqnum = seqnum;
    } else {
      unsigned char *h = ret_header(RET_UNLINK, seqnum);
      put32(h + 20, 0); /* already given back */
    }
    return HDR;
  }
  if (cmd != CMD_SUBMIT) {
    fprintf(stderr, "usbfs-server: command %u\n", cmd);
    exit(1);
  }
  uint32_t flags = be32(p + 20), len = be32(p + 24), packets = be32(p + 32);
  size_t total = HDR + (dir_in ? 0 : len);
  if (avail < total) return 0;
  if (len > (64u << 20) || ep > 15 || (packets != 0 && packets != 0xffffffff)) {
    fprintf(stderr, "usbfs-server: unsupported CMD_SUBMIT (ep %u, length %u, packets %u)\n", ep, len, packets);
    exit(1);
  }
  int control = ep == 0;
  if (control && special_control(seqnum, p + 40)) return total;
  struct urb *r = calloc(1, sizeof *r);
  size_t blen = len + (control ? 8 : 0);
  unsigned char *buf = take_buffer(r, blen);
  if (control) memcpy(buf, p + 40, 8);
  if (!dir_in) memcpy(buf + (control ? 8 : 0), p + HDR, len);
  r->seqnum = seqnum;
  r->dir_in = (int)dir_in;
  r->control = control;
  r->u.type = control ? USBDEVFS_URB_TYPE_CONTROL : (unsigned char)ep_type[ep | (dir_in ? 16 : 0)];
  r->u.endpoint = (unsigned char)(ep | (dir_in ? 0x80 : 0));
  if (control) r->u.endpoint = 0;
  r->u.flags = (dir_in && (flags & 1) ? USBDEVFS_URB_SHORT_NOT_OK : 0) | (!dir_in && (flags & 0x40) ? USBDEVFS_URB_ZERO_PACKET : 0);
  r->u.buffer = buf;
  r->u.buffer_length = (int)blen;
  r->u.usercontext = r;
  if (r->u.type == USBDEVFS_URB_TYPE_ISO) {
    fprintf(stderr, "usbfs-server: isochronous endpoint %u: not served\n", ep);
    exit(1);
  }
  if (ioctl(fd_usb, USBDEVFS_SUBMITURB, &r->u) < 0) {
    ret_submit(seqnum, -errno, NULL, 0);
    done[n_done++] = r;
    return total;
  }
  r->next = in_flight;
  in_flight = r;
  return total;
}

int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i++)
    if (strcmp(argv[i], "export") == 0) snprintf(busid, sizeof busid, "%s", argv[i + 1]);
  if (busid[0] == 0) {
    fprintf(stderr, "usage: usbfs-server ... export BUSID ...\n");
    return 64;
  }
  use_mmap = getenv("USBFS_SERVER_MMAP") != NULL && strcmp(getenv("USBFS_SERVER_MMAP"), "1") == 0;
  char p[256], busnum[16], devnum[16], speed[16];
  snprintf(p, sizeof p, "/sys/bus/usb/devices/%s/busnum", busid);
  if (read_sysfs(p, busnum, sizeof busnum) != 0) die(p);
  snprintf(p, sizeof p, "/sys/bus/usb/devices/%s/devnum", busid);
  if (read_sysfs(p, devnum, sizeof devnum) != 0) die(p);
  snprintf(p, sizeof p, "/sys/bus/usb/devices/%s/speed", busid);
  if (read_sysfs(p, speed, sizeof speed) != 0) die(p);
  snprintf(p, sizeof p, "/dev/bus/usb/%03d/%03d", atoi(busnum), atoi(devnum));
  fd_usb = open(p, O_RDWR | O_CLOEXEC);
  if (fd_usb < 0) die(p);
  scan_interfaces();
  for (int i = 0; i < n_ifaces; i++) {
    struct usbdevfs_disconnect_claim dc = {.interface = (unsigned)ifaces[i]};
    if (ioctl(fd_usb, USBDEVFS_DISCONNECT_CLAIM, &dc) < 0) die("USBDEVFS_DISCONNECT_CLAIM");
  }
  dprintf(1, "%u %s\n", (unsigned)(atoi(busnum) << 16 | atoi(devnum)), speed);

  size_t cap = 8 << 20, have = 0;
  unsigned char *in = malloc(cap);
  int eof = 0;
  while (!eof) {
    struct pollfd pf[2] = {{0, POLLIN, 0}, {fd_usb, POLLOUT, 0}};
    if (poll(pf, 2, -1) < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    if (pf[1].revents & (POLLERR | POLLHUP)) break; /* the device is gone */
    if (pf[1].revents & POLLOUT) reap();
    if (pf[0].revents & (POLLIN | POLLHUP)) {
      ssize_t n = read(0, in + have, cap - have);
      if (n < 0 && errno != EINTR && errno != EAGAIN) die("read from the link");
      if (n == 0) eof = 1;
      if (n == 0 && have > 0) fprintf(stderr, "usbfs-server: the link ended inside a message\n");
      if (n > 0) {
        have += (size_t)n;
        size_t off = 0, used;
        while ((used = handle(in + off, have - off)) > 0) off += used;
        memmove(in, in + off, have - off);
        have -= off;
        if (have == cap) {
          fprintf(stderr, "usbfs-server: a message longer than %zu bytes\n", cap);
          return 1;
        }
      }
    }
    flush();
  }
  /* the link is gone: cancel what is left, give the interfaces back to their drivers */
  for (struct urb *r = in_flight; r != NULL; r = r->next) ioctl(fd_usb, USBDEVFS_DISCARDURB, &r->u);
  for (int i = 0; i < n_ifaces; i++) {
    unsigned n = (unsigned)ifaces[i];
    ioctl(fd_usb, USBDEVFS_RELEASEINTERFACE, &n);
    struct usbdevfs_ioctl c = {.ifno = ifaces[i], .ioctl_code = USBDEVFS_CONNECT, .data = NULL};
    ioctl(fd_usb, USBDEVFS_IOCTL, &c);
  }
  return 0;
}
