/**
 * The gateway as users run it (`cohort gateway`, its own process) in front
 * of three backend processes, under a closed-loop load of GETs and POSTs:
 * kill -9 one backend, SIGSTOP another, restart and resume them. Then:
 * no GET failed, no POST reached a backend twice (the backends log each
 * one before answering), every POST answered 200 was logged exactly once,
 * the ejected backends came back, and the gateway survived bad requests
 * sent along the way. No timing is asserted: every wait is "until", with
 * generous bounds for a loaded machine.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { startCli } from '../harness/cli.js';
import type { CliProcess } from '../harness/cli.js';
import { sleep, until } from '../harness/process-cluster.js';
import { tempDir } from '../harness/tmp.js';
import { freePort } from '../transport/tcp-harness.js';

/** A condition that needs several processes to react (start, eject, recover): twice the harness's default wait. */
const slowWaitMs = 120_000;

const fixture = fileURLToPath(new URL('./fixtures/counting-backend.mjs', import.meta.url));

interface Proc {
  readonly id: string;
  readonly port: number;
  readonly log: string;
  child: ChildProcess;
}

const children = new Set<ChildProcess>();
let gateway: CliProcess | undefined;
afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  if (gateway !== undefined && gateway.child.exitCode === null) {
    gateway.child.kill('SIGKILL');
    await gateway.exit;
  }
});

async function startBackend(p: Omit<Proc, 'child'>): Promise<Proc> {
  const child = spawn(process.execPath, [fixture, p.id, String(p.port), p.log, '30'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`backend ${p.id} exited ${code}`)));
  });
  return { ...p, child };
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((r) => {
    if (child.exitCode !== null || child.signalCode !== null) r();
    else child.once('exit', () => r());
  });
}

interface BackendView {
  id: string;
  eligible: boolean;
  active: string;
  breaker: string;
  counters: { requests: number };
}

async function status(admin: number): Promise<BackendView[]> {
  const r = await fetch(`http://127.0.0.1:${admin}/status`);
  const body = (await r.json()) as { http: { backends: BackendView[] } };
  return body.http.backends;
}

function raw(port: number, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let out = '';
    s.on('data', (d: Buffer) => (out += d.toString('latin1')));
    s.on('error', () => resolve(out));
    s.on('close', () => resolve(out));
    s.write(bytes);
  });
}

interface WorkersView {
  count: number;
  answered: number;
  restarts: number;
  pids: number[];
}

async function workersOf(admin: number): Promise<WorkersView | undefined> {
  const r = await fetch(`http://127.0.0.1:${admin}/status`);
  const body = (await r.json()) as { http: { workers?: WorkersView } };
  return body.http.workers;
}

// workers 2: the HTTP proxy in two processes sharing the port (src/gateway/workers.ts), each
// with its own health state; the admin page adds them up (eligible: in any worker).
describe.each([1, 2])('cohort gateway under faults (real processes), workers %i', (workers) => {
  it('kill -9, SIGSTOP and restarts: no failed GET, no POST twice, backends come back', async () => {
    const dir = tempDir('cohort-gw-faults-');
    const backends: Proc[] = [];
    for (const id of ['b1', 'b2', 'b3']) {
      backends.push(
        await startBackend({ id, port: await freePort(), log: join(dir, `${id}.log`) }),
      );
    }
    const [b1, b2] = backends as [Proc, Proc, Proc];
    const port = await freePort();
    const admin = await freePort();
    gateway = startCli([
      'gateway',
      '--backends',
      backends.map((b) => `${b.id}=127.0.0.1:${b.port}`).join(','),
      '--listen',
      `127.0.0.1:${port}`,
      '--admin',
      `127.0.0.1:${admin}`,
      '--check-interval-ms',
      '300',
      '--check-timeout-ms',
      '1500',
      '--fall',
      '2',
      '--rise',
      '2',
      '--eject-failures',
      '3',
      '--eject-ms',
      '500',
      '--eject-ms-max',
      '2000',
      '--try-timeout-ms',
      '3000',
      '--timeout-ms',
      '60000',
      '--body-bytes-max',
      '65536',
      '--workers',
      String(workers),
    ]);
    const gw = gateway;
    await until(
      'the gateway to listen',
      () => Promise.resolve(gw.out.stdout.includes('cohort gateway:') ? true : undefined),
      60_000,
    );
    const url = `http://127.0.0.1:${port}`;

    // Closed-loop load: 8 workers, GETs and POSTs with unique ids.
    let stop = false;
    let next = 0;
    const getFailures: string[] = [];
    const postOk: number[] = [];
    const postFailed: { id: number; status: number }[] = [];
    let gets = 0;
    const worker = async (): Promise<void> => {
      while (!stop) {
        const n = next++;
        if (n % 3 === 0) {
          try {
            const r = await fetch(`${url}/order?id=${n}`, { method: 'POST', body: `order ${n}` });
            await r.arrayBuffer();
            if (r.status === 200) postOk.push(n);
            else postFailed.push({ id: n, status: r.status });
          } catch {
            postFailed.push({ id: n, status: 0 });
          }
        } else {
          try {
            const r = await fetch(`${url}/item/${n}`);
            const text = await r.text();
            if (r.status !== 200) getFailures.push(`${n}: ${r.status} ${text}`);
            gets++;
          } catch (err) {
            getFailures.push(`${n}: ${String(err)}`);
          }
        }
      }
    };
    const load = Promise.all(Array.from({ length: 8 }, () => worker()));
    const progress = async (more: number): Promise<void> => {
      const target = next + more;
      await until(
        `${more} more requests`,
        () => Promise.resolve(next >= target ? true : undefined),
        slowWaitMs,
      );
    };

    try {
      await progress(200);
      // Bad input along the way: the gateway answers and carries on.
      expect(await raw(port, `GET / HTTP/1.1\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`)).toMatch(
        /^HTTP\/1\.1 431/,
      );
      expect(
        (await fetch(`${url}/order?id=big`, { method: 'POST', body: 'x'.repeat(100_000) })).status,
      ).toBe(413);
      expect(await raw(port, '\x16\x03\x01 definitely not http\r\n\r\n')).toMatch(
        /^HTTP\/1\.1 400/,
      );

      // kill -9 b1; the gateway takes it out of rotation.
      b1.child.kill('SIGKILL');
      await exited(b1.child);
      await until(
        'b1 out of rotation',
        async () =>
          (await status(admin)).find((b) => b.id === 'b1')?.eligible === false ? true : undefined,
        slowWaitMs,
      );
      await progress(200);

      // SIGSTOP b2: it accepts connections but answers nothing.
      b2.child.kill('SIGSTOP');
      await until(
        'b2 out of rotation',
        async () =>
          (await status(admin)).find((b) => b.id === 'b2')?.eligible === false ? true : undefined,
        slowWaitMs,
      );
      await progress(200);

      // Restart b1 on its port, resume b2: both come back into rotation.
      backends[0] = await startBackend({ id: b1.id, port: b1.port, log: b1.log });
      b2.child.kill('SIGCONT');
      await until(
        'b1 and b2 back in rotation',
        async () => {
          const s = await status(admin);
          return s.every((b) => b.eligible) ? true : undefined;
        },
        slowWaitMs,
      );
      const before = await status(admin);
      await progress(300);
      const after = await status(admin);
      for (const id of ['b1', 'b2']) {
        const req = (v: BackendView[]): number =>
          v.find((b) => b.id === id)?.counters.requests ?? 0;
        expect(req(after), `${id} takes traffic again`).toBeGreaterThan(req(before));
      }
    } finally {
      stop = true;
      await load;
      b2.child.kill('SIGCONT');
    }

    // The verdicts.
    expect(getFailures).toEqual([]);
    expect(gets).toBeGreaterThan(500);
    const logged = new Map<string, number>();
    for (const b of ['b1', 'b2', 'b3']) {
      const file = join(dir, `${b}.log`);
      if (!existsSync(file)) continue;
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        if (line !== '') logged.set(line, (logged.get(line) ?? 0) + 1);
      }
    }
    const twice = [...logged].filter(([, n]) => n > 1).map(([id]) => id);
    expect(twice, 'POSTs that reached a backend twice').toEqual([]);
    for (const id of postOk) expect(logged.get(String(id)), `POST ${id} answered 200`).toBe(1);
    expect(logged.has('big')).toBe(false);
    // Only the gateway's own answers for POSTs that may have reached a dead backend.
    expect(postFailed.every((f) => f.status === 502 || f.status === 504)).toBe(true);
    process.stderr.write(
      `gateway faults: ${gets} GETs ok, ${postOk.length} POSTs ok, ${postFailed.length} POSTs answered 502/504\n`,
    );

    if (workers > 1) {
      // A worker killed: another takes its place, and the gateway serves on.
      const w = await workersOf(admin);
      expect(w?.count).toBe(workers);
      expect(w?.pids.length).toBe(workers);
      process.kill(w!.pids[0]!, 'SIGKILL');
      await until(
        'the killed worker replaced',
        async () => {
          const v = await workersOf(admin);
          return v !== undefined && v.restarts >= 1 && v.answered === workers ? true : undefined;
        },
        slowWaitMs,
      );
      expect((await workersOf(admin))?.pids).not.toContain(w!.pids[0]);
      for (let i = 0; i < 20; i++) {
        // A fresh connection each time, so both workers get some.
        const r = await fetch(`${url}/item/after-${i}`, { headers: { connection: 'close' } });
        await r.arrayBuffer();
        expect(r.status).toBe(200);
      }
    }

    // The gateway is still alive and exits cleanly.
    expect(gw.child.exitCode).toBe(null);
    gw.child.kill('SIGTERM');
    expect(await gw.exit).toBe(0);
    await sleep(0);
  });
});
