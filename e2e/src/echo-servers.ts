import net from 'node:net';
import * as grpc from '@grpc/grpc-js';

// A gRPC service without proto files: raw bytes in, raw bytes out.
const raw = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };
export const ECHO = {
  Unary: {
    path: '/mizzen.test.Echo/Unary',
    requestStream: false,
    responseStream: false,
    requestSerialize: raw.serialize,
    requestDeserialize: raw.deserialize,
    responseSerialize: raw.serialize,
    responseDeserialize: raw.deserialize,
  },
  Chat: {
    path: '/mizzen.test.Echo/Chat',
    requestStream: true,
    responseStream: true,
    requestSerialize: raw.serialize,
    requestDeserialize: raw.deserialize,
    responseSerialize: raw.serialize,
    responseDeserialize: raw.deserialize,
  },
} satisfies grpc.ServiceDefinition;

export async function grpcServer(): Promise<{ port: number; stop: () => void }> {
  const server = new grpc.Server();
  server.addService(ECHO, {
    Unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const text = call.request.toString();
      if (text === 'fail') {
        cb({ code: grpc.status.FAILED_PRECONDITION, details: 'asked to fail' });
        return;
      }
      const trailer = new grpc.Metadata();
      trailer.set('x-echo-trailer', 'kept');
      cb(null, Buffer.from(`echo:${text}`), trailer);
    },
    Chat: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on('data', (m: Buffer) => call.write(Buffer.from(`re:${m.toString()}`)));
      call.on('end', () => call.end());
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return { port, stop: () => server.forceShutdown() };
}

/** A TCP server that greets each connection with its version, then echoes. */
export async function tcpEcho(version: string): Promise<{ port: number; close: () => Promise<void> }> {
  const server = net.createServer((s) => {
    s.write(`${version}\n`);
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/** One unary Echo call: the answer (or status code) and the trailer, once the call's status has arrived. */
export function echoUnary(
  client: grpc.Client,
  text: string,
): Promise<{ value?: string; code: number; trailer?: string }> {
  return new Promise((resolve) => {
    let value: string | undefined;
    const call = (client as unknown as Record<string, (...a: unknown[]) => grpc.ClientUnaryCall>).Unary!(
      Buffer.from(text),
      new grpc.Metadata(),
      { deadline: Date.now() + 5000 },
      (_err: grpc.ServiceError | null, answer?: Buffer) => {
        value = answer?.toString();
      },
    );
    call.on('status', (s: grpc.StatusObject) =>
      // The callback runs first; give it its turn before reading what it stored.
      setImmediate(() =>
        resolve({ value, code: s.code, trailer: s.metadata.get('x-echo-trailer')[0]?.toString() }),
      ),
    );
  });
}
