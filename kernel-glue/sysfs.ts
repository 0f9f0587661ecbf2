/**
 * sysfs access through one injectable root: "/sys" on a real system, a directory tree in unit
 * tests. Writes are single write(2) calls from this process, which matters for the fd handover
 * files (usbip_sockfd, vhci attach): the kernel resolves the fd number in the writer's table.
 */
import { existsSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { GlueError, GlueErrorCode } from "./errors.js";

export class SysfsWriteError extends GlueError {
  constructor(
    readonly file: string,
    readonly errno: string,
    data: string,
  ) {
    super(GlueErrorCode.SYSFS, `writing "${data.trim()}" to ${file} failed: ${errno}`);
  }
}

export class Sysfs {
  /** @param root the sysfs mount point. Defaults to $USBIP_QREXEC_SYSFS or "/sys". */
  constructor(readonly root = process.env.USBIP_QREXEC_SYSFS ?? "/sys") {}

  path(rel: string): string {
    return path.join(this.root, rel);
  }
  exists(rel: string): boolean {
    return existsSync(this.path(rel));
  }
  read(rel: string): string {
    try {
      return readFileSync(this.path(rel), "utf8");
    } catch (e) {
      throw new GlueError(GlueErrorCode.SYSFS, `cannot read ${this.path(rel)}: ${(e as NodeJS.ErrnoException).code ?? e}`);
    }
  }
  /** Trimmed content, or undefined when the file cannot be read. */
  tryRead(rel: string): string | undefined {
    try {
      return readFileSync(this.path(rel), "utf8").trim();
    } catch {
      return undefined;
    }
  }
  /** Raw bytes (binary attributes such as `descriptors`), or undefined. */
  tryReadBytes(rel: string): Buffer | undefined {
    try {
      return readFileSync(this.path(rel));
    } catch {
      return undefined;
    }
  }
  /** Write exactly `data` (no newline added) in one write(2). */
  write(rel: string, data: string): void {
    try {
      writeFileSync(this.path(rel), data);
    } catch (e) {
      throw new SysfsWriteError(this.path(rel), (e as NodeJS.ErrnoException).code ?? String(e), data);
    }
  }
  list(rel: string): string[] {
    try {
      return readdirSync(this.path(rel));
    } catch {
      return [];
    }
  }
  /** Last path component of a symlink's target (e.g. the driver name), or undefined. */
  linkName(rel: string): string | undefined {
    try {
      return path.basename(readlinkSync(this.path(rel)));
    } catch {
      return undefined;
    }
  }
  /** The symlink's target resolved to an absolute path within the tree. */
  realPath(rel: string): string | undefined {
    try {
      return path.resolve(path.dirname(this.path(rel)), readlinkSync(this.path(rel)));
    } catch {
      return undefined;
    }
  }
}
