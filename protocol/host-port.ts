/** HOST:PORT as people write it: an IPv6 address (it has colons) in brackets, [::1]:3240. */
export const formatHostPort = (host: string, port: number): string => (host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`);
