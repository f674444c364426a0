vcl 4.1;
# Style "shopware": an instance configured the way Shopware 6's Varnish image
# does (shopware/varnish-shopware, its xkey configuration), written for
# cdnpurge's end-to-end tests from its documented behaviour. Needs vmod xkey.
# Template fields: {{.OriginHost}}, {{.OriginPort}}, {{.Grace}}; {{.Name}}
# ({{.Name}}) appears nowhere in responses and no token is used: the ACL
# decides. Its SOFT_PURGE variant is this file with xkey.purge replaced by
# xkey.softpurge, as the image's entrypoint does.
#
# PURGE <path>  from acl purgers (127.0.0.0/8, ::1, fdcd::/16, 10.0.0.0/8):
#               with an `xkey: TAG...` header, xkey.purge(TAGS): every object
#               the origin tagged with one of them (xkey response header),
#               200 "Invalidated N objects"; without one, return (purge) of
#               that URL, 200 "Purged". From elsewhere: 403 "Forbidden".
# BAN <path>    bans req.url ~ PATH: the request path is the regular
#               expression, unanchored, and on every host: BAN / bans every
#               object of every site. 200 "BAN URLs containing (PATH) done.".
# Tags          PURGEKEYS is not handled: piped to the origin.
#
# Evidence: X-Varnish and Via are removed; no cache header. Age is all
# there is: 0 on a miss, counting up on a hit (stale or not).

import std;
import xkey;

backend default {
    .host = "{{.OriginHost}}";
    .port = "{{.OriginPort}}";
}

acl purgers {
    "127.0.0.0"/8;
    "::1";
    "fdcd::"/16;
    "10.0.0.0"/8;
}

sub vcl_recv {
    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(403, "Forbidden"));
        }
        if (req.http.xkey) {
            set req.http.n-gone = xkey.purge(req.http.xkey);
            return (synth(200, "Invalidated " + req.http.n-gone + " objects"));
        }
        return (purge);
    }
    if (req.method == "BAN") {
        if (client.ip !~ purgers) {
            return (synth(403, "Forbidden"));
        }
        ban("req.url ~ " + req.url);
        return (synth(200, "BAN URLs containing (" + req.url + ") done."));
    }
    if (req.method != "GET" && req.method != "HEAD" && req.method != "PUT" &&
        req.method != "POST" && req.method != "PATCH" && req.method != "TRACE" &&
        req.method != "OPTIONS" && req.method != "DELETE") {
        return (pipe);
    }
    if (req.http.Authorization) {
        return (pass);
    }
    if (req.method != "GET" && req.method != "HEAD") {
        return (pass);
    }
    # The shop's own pages are never cached.
    if (req.url ~ "^/(checkout|account|admin|api)(/.*)?$") {
        return (pass);
    }
    set req.url = std.querysort(req.url);
    return (hash);
}

sub vcl_backend_response {
    # Serve stale for a while after expiry.
    set beresp.grace = {{.Grace}}s;
    unset beresp.http.X-Powered-By;
    unset beresp.http.Server;
    if (beresp.ttl > 0s && (bereq.method == "GET" || bereq.method == "HEAD")) {
        unset beresp.http.Set-Cookie;
    }
}

sub vcl_deliver {
    # The browser keeps nothing; tags are for invalidation only.
    if (resp.http.Cache-Control !~ "private" && req.url !~ "^/(theme|media|thumbnail|bundles|store-api)/") {
        set resp.http.Pragma = "no-cache";
        set resp.http.Expires = "-1";
        set resp.http.Cache-Control = "no-store, no-cache, must-revalidate, max-age=0";
    }
    unset resp.http.xkey;
    unset resp.http.X-Varnish;
    unset resp.http.Via;
}
