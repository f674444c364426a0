vcl 4.1;
# Style "xcache": the widely copied X-Cache VCL (what Varnish did, then
# whether the object is cached), with PURGE by ACL; written for cdnpurge's
# end-to-end tests. Template fields: {{.OriginHost}}, {{.OriginPort}},
# {{.Grace}} (beresp.grace, seconds); {{.Name}} ({{.Name}}) appears nowhere
# in responses and no token is used: the ACL decides.
#
# PURGE <path>  from acl purge (127.0.0.0/8, ::1, fdcd::/16, 10.0.0.0/8):
#               return (purge), 200 "Purged", also when nothing was cached.
#               From anywhere else: 405 "Not allowed.".
# BAN, tags     not handled: the built-in VCL pipes methods it does not know
#               (BAN, PURGEKEYS) to the origin, which answers them.
#
# Evidence: X-Cache = WHAT STORAGE, WHAT being how the request was served
# and STORAGE "cached" or "uncacheable" (the object's obj.uncacheable):
#   hit    X-Cache: hit cached
#   stale  X-Cache: hit graced cached   (served in grace, past its TTL)
#   miss   X-Cache: miss cached         (fetched and stored)
#          X-Cache: miss uncacheable    (fetched, not storable: hit-for-miss)
#   pass   X-Cache: pass uncacheable
#   synth  X-Cache: synth synth         (purge answers and errors)
#   pipe   nothing: a piped response never reaches VCL (X-Cache would be
#          "pipe uncacheable")
# X-Varnish (two ids on a hit) and Age as usual.

backend default {
    .host = "{{.OriginHost}}";
    .port = "{{.OriginPort}}";
}

acl purge {
    "127.0.0.0"/8;
    "::1";
    "fdcd::"/16;
    "10.0.0.0"/8;
}

sub vcl_recv {
    # Ours, not the client's.
    unset req.http.X-Cache;
    if (req.method == "PURGE") {
        if (client.ip !~ purge) {
            return (synth(405, "Not allowed."));
        }
        return (purge);
    }
}

sub vcl_hit {
    if (obj.ttl <= 0s && obj.grace > 0s) {
        set req.http.X-Cache = "hit graced";
    } else {
        set req.http.X-Cache = "hit";
    }
}

sub vcl_miss {
    set req.http.X-Cache = "miss";
}

sub vcl_pass {
    set req.http.X-Cache = "pass";
}

sub vcl_pipe {
    set req.http.X-Cache = "pipe uncacheable";
}

sub vcl_backend_response {
    # Short TTLs in tests: keep the object servable (stale) a while longer.
    set beresp.grace = {{.Grace}}s;
}

sub vcl_synth {
    set resp.http.X-Cache = "synth synth";
}

sub vcl_deliver {
    if (obj.uncacheable) {
        set resp.http.X-Cache = req.http.X-Cache + " uncacheable";
    } else {
        set resp.http.X-Cache = req.http.X-Cache + " cached";
    }
}
