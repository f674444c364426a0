vcl 4.0;
# Style "api-platform": an instance configured the way API Platform's
# documentation and distribution configure Varnish (BAN by cache tags),
# written for cdnpurge's end-to-end tests. Template fields: {{.OriginHost}},
# {{.OriginPort}}; {{.Name}} ({{.Name}}) appears nowhere in responses and no
# token is used: the ACL decides.
#
# PURGE         not handled: the built-in VCL pipes it to the API, which
#               refuses it (the test origin: 405 under /api/).
# BAN <any path> from acl invalidators (127.0.0.0/8, ::1, fdcd::/16,
#               10.0.0.0/8) with ApiPlatform-Ban-Regex: REGEX: bans every
#               object whose Cache-Tags (the comma-separated IRIs the API
#               sends, e.g. /api/books/1,/api/books) match, 200 "Ban added".
#               Without the header: 400 "ApiPlatform-Ban-Regex HTTP header
#               must be set.". From elsewhere: 405 "Not allowed".
#
# Evidence: no cache header; X-Varnish (two ids on a hit) and Age. A stale
# copy is never served while the API is healthy (vcl_hit restarts).

import std;

backend default {
    .host = "{{.OriginHost}}";
    .port = "{{.OriginPort}}";
}

acl invalidators {
    "127.0.0.0"/8;
    "::1";
    "fdcd::"/16;
    "10.0.0.0"/8;
}

sub vcl_recv {
    if (req.restarts > 0) {
        set req.hash_always_miss = true;
    }
    unset req.http.forwarded;
    if (req.method == "BAN") {
        if (client.ip !~ invalidators) {
            return (synth(405, "Not allowed"));
        }
        if (req.http.ApiPlatform-Ban-Regex) {
            ban("obj.http.Cache-Tags ~ " + req.http.ApiPlatform-Ban-Regex);
            return (synth(200, "Ban added"));
        }
        return (synth(400, "ApiPlatform-Ban-Regex HTTP header must be set."));
    }
}

sub vcl_hit {
    if (obj.ttl >= 0s) {
        return (deliver);
    }
    if (std.healthy(req.backend_hint)) {
        return (restart);
    }
    if (obj.ttl + obj.grace > 0s) {
        return (deliver);
    }
    return (restart);
}

sub vcl_deliver {
    # Tags are for invalidation, not for clients.
    unset resp.http.Cache-Tags;
}
