#!/bin/sh
# Makes a demo CA and certificates for config/examples/tls.yaml (docs/tls.md) with openssl.
# DEMO ONLY: the CA key is written next to the certificates and committed; never trust this CA anywhere.
# Usage: scripts/make-demo-certs.sh [DIR]   (default: config/examples/certs)
set -eu
dir=${1:-config/examples/certs}
days=3650
mkdir -p "$dir"
cd "$dir"
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"

openssl req -x509 $ec -keyout demo-ca-key.pem -out demo-ca.pem -days $days -subj "/CN=nanogate demo CA (do not trust)" 2>/dev/null

# leaf NAME USAGE SAN...: NAME.pem and NAME-key.pem signed by the demo CA
leaf() {
  name=$1; usage=$2; shift 2
  san=$(printf 'DNS:%s,' "$@")IP:127.0.0.1
  printf 'subjectAltName=%s\nextendedKeyUsage=%s\n' "$san" "$usage" > "$name.ext"
  openssl req -new $ec -keyout "$name-key.pem" -out "$name.csr" -subj "/CN=$1" 2>/dev/null
  openssl x509 -req -in "$name.csr" -CA demo-ca.pem -CAkey demo-ca-key.pem -CAcreateserial -out "$name.pem" -days $days -extfile "$name.ext" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

leaf gateway serverAuth localhost          # the listener's default certificate
leaf api serverAuth api.localhost           # chosen by SNI for api.localhost
leaf upstream serverAuth upstream.localhost # an HTTPS upstream signed by the private CA
leaf client clientAuth nanogate-gateway     # the gateway's client certificate (mTLS to the upstream)
rm -f demo-ca.srl
chmod 600 ./*-key.pem
echo "demo certificates in $dir (demo only)"
