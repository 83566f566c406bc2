// The part of dns-packet 5's API the DNS discovery source uses (the package ships no types).
declare module 'dns-packet' {
  export interface Question {
    type: string;
    name: string;
    class?: string;
  }
  export interface Answer {
    type: string;
    name: string;
    ttl?: number;
    class?: string;
    /** A/AAAA: the address; SRV: { priority, weight, port, target }; CNAME: the target name */
    data?: unknown;
    udpPayloadSize?: number;
  }
  export interface Packet {
    id?: number;
    type?: 'query' | 'response';
    flags?: number;
    rcode?: string;
    flag_tc?: boolean;
    questions?: Question[];
    answers?: Answer[];
    authorities?: Answer[];
    additionals?: Answer[];
  }
  export const RECURSION_DESIRED: number;
  export function encode(packet: Packet): Buffer;
  export function decode(buf: Buffer): Packet;
  export function streamEncode(packet: Packet): Buffer;
  export function streamDecode(buf: Buffer): Packet | null;
  const _default: {
    RECURSION_DESIRED: number;
    encode: typeof encode;
    decode: typeof decode;
    streamEncode: typeof streamEncode;
    streamDecode: typeof streamDecode;
  };
  export default _default;
}
