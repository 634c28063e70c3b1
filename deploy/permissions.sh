#!/usr/bin/env bash
# Create the aupgate service user and give every file of an installed gateway its owner and mode.
# Idempotent: run it after every install or upgrade (`sudo deploy/permissions.sh`).
#
# Who may do what, and why:
#   /etc/aupgate/policies, categories   root:aupgate 0750/0640  the service reads, only root edits:
#                                       a compromised worker must not rewrite its own policy.
#   /etc/aupgate/mitmproxy              root:aupgate 0750       mitmproxy's confdir (--set confdir=)
#     mitmproxy-ca.pem (key + cert)     root:aupgate 0640       the agency CA's private key: whoever
#                                       holds it can impersonate every web site to every agency
#                                       browser. Readable by the service, writable by nobody but root,
#                                       never in a backup that leaves the gateway unencrypted.
#     mitmproxy-ca.p12                  removed                 mitmproxy writes the key a second time
#                                       in this file when it makes a CA; nothing needs it.
#     mitmproxy-ca-cert.*, dhparam      root:aupgate 0644       public.
#   /var/log/aupgate                    aupgate:adm 2750        the only place the service writes;
#     audit*.jsonl                      aupgate:adm 0640        group adm (log readers, the shipper)
#                                       reads, nobody else: the trail names people and sites.
#   /var/www/aupgate-pac                root:root 0755/0644     the PAC file is public by design.
#
# Environment: DESTDIR (a staging root, for packaging and tests), AUPGATE_USER, AUPGATE_GROUP,
# LOG_GROUP (defaults aupgate, aupgate, adm).
set -euo pipefail

DESTDIR="${DESTDIR:-}"
USER_NAME="${AUPGATE_USER:-aupgate}"
GROUP_NAME="${AUPGATE_GROUP:-aupgate}"
LOG_GROUP="${LOG_GROUP:-adm}"

if ! getent group "$GROUP_NAME" >/dev/null; then
    groupadd --system "$GROUP_NAME"
fi
if ! getent passwd "$USER_NAME" >/dev/null; then
    useradd --system --gid "$GROUP_NAME" --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin --comment "aupgate gateway" "$USER_NAME"
fi

etc="$DESTDIR/etc/aupgate"
confdir="$etc/mitmproxy"
logs="$DESTDIR/var/log/aupgate"
pac="$DESTDIR/var/www/aupgate-pac"

install -d -o root -g root -m 0755 "$etc"
install -d -o root -g "$GROUP_NAME" -m 0750 "$etc/policies" "$etc/categories" "$confdir"
install -d -o "$USER_NAME" -g "$LOG_GROUP" -m 2750 "$logs"
install -d -o root -g root -m 0755 "$pac"

# Policies and categories: directories 0750, files 0640, all root:aupgate.
for tree in "$etc/policies" "$etc/categories"; do
    chown -R "root:$GROUP_NAME" "$tree"
    find "$tree" -type d -exec chmod 0750 {} +
    find "$tree" -type f -exec chmod 0640 {} +
done

# The CA: the key readable by the service only; public parts world-readable.
rm -f "$confdir/mitmproxy-ca.p12"
if [ -e "$confdir/mitmproxy-ca.pem" ]; then
    chown "root:$GROUP_NAME" "$confdir/mitmproxy-ca.pem"
    chmod 0640 "$confdir/mitmproxy-ca.pem"
else
    echo "warning: no CA at $confdir/mitmproxy-ca.pem (docs/ca-rollout.md); the service will not start" >&2
fi
for public in "$confdir"/mitmproxy-ca-cert.* "$confdir"/mitmproxy-dhparam.pem; do
    [ -e "$public" ] || continue
    chown "root:$GROUP_NAME" "$public"
    chmod 0644 "$public"
done

# Audit logs (rotated ones included): the service writes, log readers read.
find "$logs" -maxdepth 1 -type f -name 'audit*' -exec chown "$USER_NAME:$LOG_GROUP" {} + \
    -exec chmod 0640 {} +

find "$pac" -maxdepth 1 -type f -exec chmod 0644 {} +
echo "aupgate: ownership and modes set under ${DESTDIR:-/}"
