/**
 * The bad-input corpus: every subcommand driven through bad invocations and inputs — unknown
 * flags, missing values, nonexistent, unreadable and directory paths, garbage files, silent
 * peers, peers that close early, signals at each wait. For each: one line on stderr (a wait
 * on a silent peer may say once what it waits for), no stack trace, the documented exit code
 * (cli/errors.ts: 1 failure, 2 malformed data from the peer, 64 usage, 128+N a signal),
 * no process left (every child carries a marker in its environment, looked for in /proc), no
 * file left in the case's working and run directories but what the case expects, and done
 * within its bound (the child is killed there, which fails the case). Grow it with every bug.
 */
import test from "ava";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { repoRoot } from "./helpers/fixtures.js";

interface Case {
  name: string;
  args: string[] | ((dir: string, port: number) => string[]);
  code: number;
  /** what the (last) stderr line must say */
  says: RegExp;
  /** a TCP server the case talks to: silent, closes at once, or sends garbage */
  peer?: "silent" | "closes" | "garbage";
  /** signal the process (or the one running `usbip-qrexec TARGET…`) once it said `when` */
  signal?: { name: NodeJS.Signals; when: RegExp; target?: string; ready?: RegExp };
  /** files the case may leave in its directory (outputs by design) */
  leaves?: string[];
  /** stdout must match */
  stdout?: RegExp;
  /** a wait announced before the error: two lines allowed, the first this */
  notice?: RegExp;
  boundMs?: number;
  stdin?: Buffer;
  /** fd 0 is /dev/null (a spawned child's stdin pipe is a socket in Node) */
  noStdin?: boolean;
  /** progress lines may come before the last one (demo) */
  progress?: boolean;
}

const cli = path.join(repoRoot, "bin/usbip-qrexec.js");
const node = process.execPath;
const C = (n: string) => path.join(repoRoot, "test/fixtures/captures", n);
const garbage = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 167 + 13) & 0xff));

/** Inputs every case's directory holds. */
function populate(dir: string): void {
  mkdirSync(path.join(dir, "a-directory"));
  writeFileSync(path.join(dir, "empty"), "");
  writeFileSync(path.join(dir, "garbage"), garbage);
  writeFileSync(path.join(dir, "binary.policy"), Buffer.concat([Buffer.from("allow mass-storage\nallow \x1b[31mred"), garbage.subarray(0, 200).filter((b) => b !== 0 && b !== 10)]));
  writeFileSync(path.join(dir, "disk.img"), Buffer.alloc(1 << 20));
}
const INPUTS = ["a-directory", "binary.policy", "disk.img", "empty", "garbage", "run"];

const usage = (name: string, args: string[], says: RegExp): Case => ({ name, args, code: 64, says });
const commands = ["demo", "probe", "export", "import", "detach", "port", "serve", "connect", "attach", "list", "decode", "pcap", "qrexec-sim"];

const cases: Case[] = [
  // usage: every command refuses an unknown flag and a missing value in our words
  usage("no command", [], /^usage: usbip-qrexec COMMAND/),
  usage("unknown command", ["frobnicate"], /unknown command "frobnicate"/),
  ...commands.map((c) => usage(`${c}: unknown flag`, [c, "--no-such-flag"], new RegExp(`^usbip-qrexec: ${c}: unknown option --no-such-flag \\(see 'usbip-qrexec ${c} --help'\\)$`))),
  usage("demo: missing value", ["demo", "--size"], /^usbip-qrexec: demo: --size needs a value/),
  usage("list: a value for a flag that takes none", ["list", "--json=yes"], /^usbip-qrexec: list: --json takes no value/),
  usage("port: unexpected argument", ["port", "extra"], /^usbip-qrexec: port: unexpected argument "extra"/),
  usage("demo: size 0", ["demo", "--size", "0"], /--size must be an integer 1\.\.1024/),
  usage("demo: chunk 3", ["demo", "--chunk", "3"], /--chunk must be a multiple of 4/),
  usage("export: no device", ["export"], /exactly one DEVICE/),
  usage("export: bad mode", ["export", "1-1", "--mode", "bogus"], /--mode must be kernel, relay or userspace/),
  usage("export: trace without relay", ["export", "1-1", "--trace", "t.pcapng"], /--trace needs --mode relay/),
  usage("export: trace into the link", ["export", "1-1", "--mode", "relay", "--trace", "-"], /--trace - would write into the qrexec link/),
  usage("export: unknown virtual device", ["export", "--virtual", "toaster"], /unknown virtual device "toaster"/),
  usage("export: virtual image missing", ["export", "--virtual", "mass-storage:nonexistent.img"], /does not exist/),
  usage("export: virtual image is a directory", ["export", "--virtual", "mass-storage:a-directory"], /a-directory is a directory, not an image file/),
  usage("export: virtual image empty", ["export", "--virtual", "mass-storage:empty"], /at least one 512-byte block/),
  usage("export: a value that looks like a flag", ["export", "--virtual", "hid-keyboard", "--type-delay", "-5"], /--type-delay needs a value \(one that starts with "-" is written --type-delay=-VALUE\)/),
  usage("export: negative type delay", ["export", "--virtual", "hid-keyboard", "--type-delay=-5"], /--type-delay must be 0\.\.600000/),
  usage("import: no statefile", ["import"], /exactly one STATEFILE/),
  usage("import: trace into the link", ["import", "st", "--mode", "relay", "--trace", "-"], /--trace - would write into the qrexec link/),
  usage("import: policy without relay", ["import", "st", "--policy", "p"], /--policy needs --mode relay/),
  usage("import: binary policy, quoted short and escaped", ["import", "st", "--mode", "relay", "--policy", "binary.policy"], /policy binary\.policy: line 2: expected .* got "allow \\u001b\[31mred[^\x00-\x1f\x7f-\xff]*"\.\.\.$/),
  usage("detach: nothing to detach", ["detach"], /exactly one of --statefile STATEFILE, -p PORT, --busid BUSID or --all/),
  usage("detach: bad port", ["detach", "-p", "x1"], /-p takes a vhci-hcd port number/),
  usage("detach: bad busid", ["detach", "--busid", "1-1; rm"], /invalid busid/),
  usage("detach: orphan-of with all", ["detach", "--all", "--orphan-of", "1"], /--orphan-of goes with --statefile or --busid/),
  usage("serve: no --tcp", ["serve", "--virtual", "hid-keyboard"], /--tcp \[HOST:\]PORT is required/),
  usage("serve: bad address", ["serve", "--tcp", "a:b:c", "--virtual", "hid-keyboard"], /--tcp must be HOST:PORT/),
  usage("serve: port out of range", ["serve", "--tcp", "70000", "--virtual", "hid-keyboard"], /port must be 0\.\.65535/),
  usage("serve: nothing to serve", ["serve", "--tcp", "0"], /nothing to serve/),
  usage("connect: no server", ["connect", "--busid", "1-1"], /--tcp HOST:PORT and --busid BUSID are required/),
  usage("connect: busid with a space", ["connect", "--tcp", "127.0.0.1", "--busid", "1 1"], /characters a busid cannot have/),
  usage("attach: no busid", ["attach", "-r", "127.0.0.1"], /-r HOST and -b BUSID are required/),
  usage("attach: port 0", ["attach", "-r", "127.0.0.1", "-b", "1-1", "--tcp-port", "0"], /--tcp-port must be 1\.\.65535/),
  usage("list: -l and -r", ["list", "-l", "-r", "127.0.0.1"], /give -l or -r HOST, not both/),
  usage("list: --tcp-port alone", ["list", "--tcp-port", "3240"], /--tcp-port goes with -r HOST/),
  usage("decode: one file only", ["decode", "--from-client", "garbage"], /--from-client FILE and --from-server FILE are both required/),
  usage("decode: stdin twice", ["decode", "--from-client", "-", "--from-server", "-"], /only one of the inputs can be "-"/),
  usage("decode: bad format", ["decode", "--from-client", "empty", "--from-server", "empty", "--format", "xml"], /--format must be ndjson or text/),
  usage("pcap: no output", ["pcap", "--from-client", "empty", "--from-server", "empty"], /-o OUT\.pcapng are required/),
  usage("probe: neither service nor stdio", ["probe"], /give either -- SERVICE_CMD\.\.\. or --stdio/),
  usage("probe: timeout 0", ["probe", "--timeout", "0", "--", "true"], /--timeout must be a positive number/),
  usage("qrexec-sim: one command", ["qrexec-sim", "--", "true"], /give both commands/),
  usage("qrexec-sim: bad link", ["qrexec-sim", "--link", "carrier-pigeon", "--", "true", "--", "true"], /--link must be socket, pipes or direct/),

  // files: nonexistent, directories, empty, garbage, unwritable outputs
  { name: "decode: nonexistent file", args: ["decode", "--from-client", "nope", "--from-server", "empty"], code: 1, says: /^usbip-qrexec: decode: cannot read nope: no such file$/ },
  { name: "decode: a directory", args: ["decode", "--from-client", "a-directory", "--from-server", "empty"], code: 1, says: /cannot read a-directory: is a directory$/ },
  { name: "decode: empty capture", args: ["decode", "--from-client", "empty", "--from-server", "empty"], code: 1, says: /the capture is empty/ },
  { name: "decode: garbage", args: ["decode", "--from-client", "garbage", "--from-server", "empty"], code: 2, says: /client stream garbage: malformed: USBIP_ERR_\w+ at byte 0: /, stdout: /"error":"USBIP_ERR_/ },
  { name: "decode: garbage on stdin", args: ["decode", "--from-client", "-", "--from-server", "empty", "--format", "text"], stdin: garbage, code: 2, says: /client stream stdin: malformed: USBIP_ERR_\w+ at byte 0/ },
  { name: "pcap: output in a missing directory", args: (d) => ["pcap", "--from-client", C("tcp-2.client-to-server.bin"), "--from-server", C("tcp-2.server-to-client.bin"), "-o", path.join(d, "missing/x.pcapng")], code: 1, says: /cannot write the trace .*missing\/x\.pcapng: no such directory$/ },
  { name: "pcap: output is a directory", args: ["pcap", "--from-client", C("tcp-2.client-to-server.bin"), "--from-server", C("tcp-2.server-to-client.bin"), "-o", "a-directory"], code: 1, says: /cannot write the trace a-directory: is a directory$/ },
  { name: "pcap: disk full", args: ["pcap", "--from-client", C("tcp-2.client-to-server.bin"), "--from-server", C("tcp-2.server-to-client.bin"), "-o", "/dev/full"], code: 1, says: /cannot write \/dev\/full: no space left on the device$/ },
  { name: "pcap: garbage (events before the fault written)", args: ["pcap", "--from-client", "garbage", "--from-server", "empty", "-o", "out.pcapng"], code: 2, says: /client stream malformed: USBIP_ERR_\w+ at byte 0: .*; 0 events written$/, leaves: ["out.pcapng"] },
  { name: "pcap: nonexistent input", args: ["pcap", "--from-client", "nope", "--from-server", "empty", "-o", "out.pcapng"], code: 1, says: /cannot read nope: no such file$/ },
  { name: "import: policy missing", args: ["import", "st", "--mode", "relay", "--policy", "nope"], code: 1, says: /cannot read the policy nope: ENOENT/ },
  { name: "import: trace in a missing directory, refused before the handshake wait", args: ["import", "st", "--mode", "relay", "--trace", "missing/t.pcapng"], code: 1, says: /cannot write the trace missing\/t\.pcapng: no such directory$/ },
  { name: "import: fd 0 is no socket (kernel mode)", args: ["import", "st"], noStdin: true, code: 1, says: /fd 0 is not a socket/ },
  { name: "detach: no such statefile", args: ["detach", "--statefile", "nope"], code: 1, says: /nope: no such statefile \(not attached\)$/ },
  { name: "port: nothing imported", args: ["port"], code: 0, says: /^$/, stdout: /^no imported devices\n$/ },

  // peers: refused, silent, closing, garbage; services that die, stay silent, or send garbage
  { name: "connect: refused", args: ["connect", "--tcp", "127.0.0.1:1", "--busid", "1-1", "st"], code: 1, says: /cannot connect to 127\.0\.0\.1:1: connection refused/ },
  { name: "list -r: refused (IPv6 in brackets)", args: ["list", "-r", "::1", "--tcp-port", "1"], code: 1, says: /cannot connect to \[::1\]:1: / },
  { name: "list -r: silent server", args: (_d, p) => ["list", "-r", "127.0.0.1", "--tcp-port", String(p)], peer: "silent", code: 1, notice: /waiting for 127\.0\.0\.1:\d+ to answer OP_REQ_DEVLIST \(gives up after 10 s\)/, says: /did not answer OP_REQ_DEVLIST within 10 s$/, boundMs: 20_000 },
  { name: "list -r: server closes at once", args: (_d, p) => ["list", "-r", "127.0.0.1", "--tcp-port", String(p)], peer: "closes", code: 1, says: /closed the connection before answering OP_REQ_DEVLIST$|connection to 127\.0\.0\.1:\d+ failed: connection reset by the server/ },
  { name: "list -r: server sends garbage", args: (_d, p) => ["list", "-r", "127.0.0.1", "--tcp-port", String(p)], peer: "garbage", code: 2, says: /malformed reply from 127\.0\.0\.1:\d+: USBIP_ERR_\w+ at byte 0/ },
  { name: "connect: server closes at once", args: (_d, p) => ["connect", "--tcp", `127.0.0.1:${p}`, "--busid", "1-1", "st"], peer: "closes", code: 1, says: /closed the connection before answering OP_REQ_IMPORT$|connection to 127\.0\.0\.1:\d+ failed: connection reset by the server/ },
  { name: "attach: server sends garbage", args: (_d, p) => ["attach", "-r", "127.0.0.1", "--tcp-port", String(p), "-b", "1-1", "st"], peer: "garbage", code: 2, says: /malformed reply from 127\.0\.0\.1:\d+/ },
  { name: "serve: port in use", args: (_d, p) => ["serve", "--tcp", `127.0.0.1:${p}`, "--virtual", "hid-keyboard"], peer: "silent", code: 1, says: /cannot listen on 127\.0\.0\.1:\d+: the port is in use$/ },
  { name: "probe: no such service", args: ["probe", "--", "/nonexistent/service"], code: 1, says: /cannot run \/nonexistent\/service/ },
  { name: "probe: service ends before the handshake", args: ["probe", "--", "true"], code: 1, says: /no device info received: the connection closed before the handshake/ },
  { name: "probe: invalid handshake", args: ["probe", "--", "sh", "-c", "echo hello"], code: 2, says: /invalid handshake from the backend/ },
  { name: "probe: silent service", args: ["probe", "--timeout", "2", "--", "sleep", "25"], code: 1, says: /no device info received within 2 s/, boundMs: 10_000 },
  { name: "probe: handshake, then silence (the timeout covers everything)", args: ["probe", "--timeout", "3", "--", "sh", "-c", "echo 65537 480; exec sleep 25"], code: 1, says: /did not finish answering within 3 s/, boundMs: 12_000 },
  { name: "probe: handshake, then garbage", args: ["probe", "--", "sh", "-c", "echo 65537 480; head -c 2000 /dev/urandom"], code: 2, says: /the device side sent malformed data: USBIP_ERR_\w+ at byte 0/ },
  { name: "export --virtual: the frontend sends garbage", args: ["export", "--virtual", "hid-keyboard"], stdin: garbage, code: 2, says: /^usbip-qrexec: export: refused a message from the frontend: USBIP_ERR_\w+ at byte 0/ },

  // signals at each wait: a clean, quiet stop (one line), exit 128+N, nothing left
  { name: "import (kernel) waiting for the handshake, SIGTERM", args: (d) => ["qrexec-sim", "--", node, cli, "import", path.join(d, "st"), "--", "sh", "-c", "exec cat >/dev/null"], signal: { name: "SIGTERM", when: /^/, target: "import", ready: /usbip-qrexec-guard/ }, code: 143, says: /^usbip-qrexec: interrupted by SIGTERM while waiting for the backend's handshake$/ },
  { name: "import (relay) waiting for the handshake, SIGINT", args: (d) => ["qrexec-sim", "--", node, cli, "import", path.join(d, "st"), "--mode", "relay", "--", "sh", "-c", "exec cat >/dev/null"], signal: { name: "SIGINT", when: /^/, target: "import", ready: /usbip-qrexec-guard/ }, code: 130, says: /^usbip-qrexec: interrupted by SIGINT while waiting for the backend's handshake$/ },
  { name: "connect waiting for a silent server, SIGTERM", args: (_d, p) => ["connect", "--tcp", `127.0.0.1:${p}`, "--busid", "1-1", "st"], peer: "silent", signal: { name: "SIGTERM", when: /^/ }, code: 143, says: /^usbip-qrexec: interrupted by SIGTERM while waiting for 127\.0\.0\.1:\d+$/ },
  { name: "probe waiting for the handshake, SIGINT", args: ["probe", "--", "sleep", "30"], signal: { name: "SIGINT", when: /^/ }, code: 130, says: /^usbip-qrexec: interrupted by SIGINT while waiting for the backend's handshake$/ },
  { name: "demo, SIGINT while reading", args: ["demo", "--size", "512"], signal: { name: "SIGINT", when: /read /, target: "demo --size" }, code: 130, says: /^usbip-qrexec: interrupted by SIGINT \(the demo did not finish\)$/, boundMs: 90_000, progress: true },
];

/** pids of processes whose environment carries `marker` */
function marked(marker: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      if (`\0${readFileSync(`/proc/${p}/environ`, "latin1")}`.includes(`\0${marker}\0`)) out.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return out;
}

function argvOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
  } catch {
    return "";
  }
}

async function startPeer(kind: Case["peer"]): Promise<{ port: number; close(): void }> {
  const socks = new Set<net.Socket>();
  const server = net.createServer((s) => {
    socks.add(s);
    s.on("error", () => {});
    if (kind === "closes") s.destroy();
    else if (kind === "garbage") s.end(garbage);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close() {
      for (const s of socks) s.destroy();
      server.close();
    },
  };
}

const files = (dir: string, rel = ""): string[] =>
  readdirSync(path.join(dir, rel), { withFileTypes: true }).flatMap((e) => (e.isDirectory() && e.name !== "a-directory" ? [path.join(rel, e.name), ...files(dir, path.join(rel, e.name))] : [path.join(rel, e.name)]));

for (const [i, c] of cases.entries()) {
  // one case at a time: ninety CLI starts at once on two cores would make the bounds a race
  test.serial(`corpus: ${c.name}`, async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), "usbip-qrexec-corpus-"));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    populate(dir);
    const rundir = path.join(dir, "run");
    mkdirSync(rundir);
    const peer = c.peer ? await startPeer(c.peer) : undefined;
    const marker = `USBIP_CORPUS_CASE=${process.pid}-${i}`;
    const args = typeof c.args === "function" ? c.args(dir, peer?.port ?? 0) : c.args;
    const bound = c.boundMs ?? 30_000;
    const child = spawn(node, [cli, ...args], { cwd: dir, env: { ...process.env, USBIP_CORPUS_CASE: marker.split("=")[1], USBIP_QREXEC_RUNDIR: rundir, USBIP_QREXEC_DEBUG: "" }, stdio: [c.noStdin ? "ignore" : "pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (b: Buffer) => (stdout += b.toString()));
    child.stderr!.on("data", (b: Buffer) => (stderr += b.toString()));
    child.stdin?.on("error", () => {});
    child.stdin?.end(c.stdin);
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      for (const p of marked(marker)) process.kill(p, "SIGKILL");
    }, bound);
    if (c.signal) {
      const sig = c.signal;
      // wait until the process is in the wait the case is about (its argv shows, its words said)
      for (let n = 0; n < 400 && !killed; n++) {
        await new Promise((r) => setTimeout(r, 50));
        // the process running `usbip-qrexec TARGET…` itself (not qrexec-sim, whose argv holds it too)
        const target = sig.target === undefined ? child.pid : marked(marker).find((p) => argvOf(p).startsWith(`${node} ${cli} ${sig.target}`));
        // in the wait: it said what the case waits for, and (ready) its helper or guard runs
        const inWait = sig.ready === undefined || marked(marker).some((p) => sig.ready!.test(argvOf(p)));
        if (target !== undefined && sig.when.test(stderr) && inWait && n >= 20) {
          process.kill(target, sig.name);
          break;
        }
      }
    }
    const code = await new Promise<number | null>((r) => child.on("close", (code) => r(code)));
    clearTimeout(timer);
    peer?.close();
    // a signalled import is qrexec-sim's local side: the simulator reports it; look at the import's own words
    t.false(killed, `not done within ${bound / 1000} s; stderr: ${stderr}`);
    t.is(code, c.code, `exit status; stderr: ${stderr}`);
    const lines = stderr.trimEnd() === "" ? [] : stderr.trimEnd().split("\n");
    t.false(/\n\s+at |Error: |Unhandled|node:internal/.test(stderr), `a stack trace or raw Node error: ${stderr}`);
    if (c.code === 64 && c.says.source.startsWith("^usage")) t.regex(stderr, c.says);
    else if (c.says.source === "^$") t.is(stderr, "");
    else {
      const expected = c.notice ? 2 : 1;
      if (!c.progress) t.is(lines.length, expected, `stderr lines: ${stderr}`);
      if (c.notice) t.regex(lines[0]!, c.notice);
      t.regex(lines.at(-1) ?? "", c.says);
      if (!c.progress) t.true(lines.every((l) => l.startsWith("usbip-qrexec")), stderr);
    }
    if (c.stdout) t.regex(stdout, c.stdout);
    else if (c.code !== 0 && c.code !== 2) t.is(stdout, "", "an error case wrote to stdout");
    // nothing left behind: no process, no file but the inputs and what the case leaves by design
    await new Promise((r) => setTimeout(r, 300)); // a guard's disarm, the simulator's last child
    t.deepEqual(marked(marker).map(argvOf), [], "processes left");
    const left = files(dir).filter((f) => !INPUTS.includes(f) && !(c.leaves ?? []).includes(f));
    t.deepEqual(left, [], "files left");
  });
}
