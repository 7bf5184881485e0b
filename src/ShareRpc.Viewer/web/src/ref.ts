// The sturdy ref in the page's fragment: sharerpc[s]://HOST:PORT/SHARE_ID/CAPABILITY_ID#SECRET
// (docs/design.md, "Service"; src/ShareRpc.Protocol/SturdyRef.cs parses the same way). Parsed here
// only to say clearly what is wrong with a bad link; the server is the judge of a good one.

export interface SturdyRef {
  readonly text: string;
  readonly tls: boolean;
  readonly host: string;
  readonly port: number;
  readonly shareId: string;
  readonly capabilityId: string;
}

const ID = /^[A-Za-z0-9_-]{1,128}$/;
const SECRET = /^[A-Za-z0-9_-]+={0,2}$/;

/** The ref in a location hash ("#sharerpc://…#SECRET"), or an error that says what is wrong, never echoing the secret. */
export function refFromHash(hash: string): SturdyRef | string {
  let text = hash.startsWith("#") ? hash.slice(1) : hash;
  if (text.length === 0) {
    return "This page shows a share from the link after its '#': open it as /view#<sturdy ref> (sharerpc delegate --rights read prints one).";
  }
  if (/^sharerpcs?%3A/i.test(text)) {
    try {
      text = decodeURIComponent(text);
    } catch {
      return "The share link is not valid: its escaped characters do not decode.";
    }
  }
  return parseSturdyRef(text.trim());
}

export function parseSturdyRef(text: string): SturdyRef | string {
  const bad = (what: string) => `The share link is not valid: ${what}. A link looks like /view#sharerpc://HOST:PORT/SHARE/CAPABILITY#SECRET.`;
  const scheme = text.startsWith("sharerpcs://") ? "sharerpcs" : text.startsWith("sharerpc://") ? "sharerpc" : null;
  if (scheme === null) return bad("it must start with sharerpc:// or sharerpcs://");
  const rest = text.slice(scheme.length + 3);
  const hash = rest.indexOf("#");
  if (hash < 0) return bad("it has no #SECRET part");
  const secret = rest.slice(hash + 1);
  const beforeSecret = rest.slice(0, hash);
  const slash = beforeSecret.indexOf("/");
  if (slash < 0) return bad("it has no /SHARE/CAPABILITY path");
  const authority = beforeSecret.slice(0, slash);
  const path = beforeSecret.slice(slash + 1).split("/");
  const colon = authority.lastIndexOf(":");
  const host = colon > 0 ? authority.slice(0, colon) : "";
  const port = Number(colon > 0 ? authority.slice(colon + 1) : "");
  if (host.length === 0 || !Number.isInteger(port) || port < 1 || port > 65535) return bad("its server must be HOST:PORT");
  if (path.length !== 2 || !ID.test(path[0]!) || !ID.test(path[1]!)) return bad("its share and capability ids must be 1 to 128 characters of A-Z a-z 0-9 _ -");
  if (secret.length === 0 || !SECRET.test(secret)) return bad("its secret is empty or not base64url");
  return { text, tls: scheme === "sharerpcs", host, port, shareId: path[0]!, capabilityId: path[1]! };
}
