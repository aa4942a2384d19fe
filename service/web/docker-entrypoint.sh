#!/bin/sh
# Fills in nginx.conf's placeholders from the environment and runs nginx in the foreground.
# POSIX sh: runs under Debian's dash and Alpine's busybox.
#
#   LISTEN_PORT   port to listen on                    (default 8080)
#   API_UPSTREAM  host:port of the backend             (default backend:8000)
#   WEB_ROOT      directory with index.html, assets/   (default /usr/share/nginx/html)
#   NGINX_TEMPLATE  the config with placeholders       (default /etc/nginx/nginx.conf.template)
#   NGINX_CONF    where the filled-in config goes      (default /tmp/nginx.conf)
#
# With arguments, runs them instead of nginx once the config is written (e.g. `nginx -t -c ...`).
set -eu

LISTEN_PORT=${LISTEN_PORT:-8080}
API_UPSTREAM=${API_UPSTREAM:-backend:8000}
WEB_ROOT=${WEB_ROOT:-/usr/share/nginx/html}
NGINX_TEMPLATE=${NGINX_TEMPLATE:-/etc/nginx/nginx.conf.template}
NGINX_CONF=${NGINX_CONF:-/tmp/nginx.conf}

fail() {
    echo "docker-entrypoint: $*" >&2
    exit 2
}

# Reject values that would break out of the sed replacement or the nginx directive.
case $LISTEN_PORT in
    '' | *[!0-9]*) fail "LISTEN_PORT must be a port number, got '$LISTEN_PORT'" ;;
esac
[ "$LISTEN_PORT" -ge 1 ] && [ "$LISTEN_PORT" -le 65535 ] || fail "LISTEN_PORT must be 1-65535, got '$LISTEN_PORT'"
case $API_UPSTREAM in
    *:*) ;;
    *) fail "API_UPSTREAM must be host:port, got '$API_UPSTREAM'" ;;
esac
case $API_UPSTREAM in
    *[!A-Za-z0-9.:_-]*) fail "API_UPSTREAM has characters a host:port cannot have: '$API_UPSTREAM'" ;;
esac
case $WEB_ROOT in
    /*) ;;
    *) fail "WEB_ROOT must be an absolute path, got '$WEB_ROOT'" ;;
esac
case $WEB_ROOT in
    *[!A-Za-z0-9/._-]*) fail "WEB_ROOT may hold only letters, digits and / . _ -, got '$WEB_ROOT'" ;;
esac
[ -r "$NGINX_TEMPLATE" ] || fail "config template $NGINX_TEMPLATE is not readable"

sed -e "s|__LISTEN_PORT__|$LISTEN_PORT|g" \
    -e "s|__API_UPSTREAM__|$API_UPSTREAM|g" \
    -e "s|__WEB_ROOT__|$WEB_ROOT|g" \
    "$NGINX_TEMPLATE" >"$NGINX_CONF"

if [ "$#" -gt 0 ]; then
    exec "$@"
fi
exec nginx -c "$NGINX_CONF" -g 'daemon off;'
