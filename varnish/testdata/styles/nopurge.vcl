vcl 4.1;
# Style "nopurge": the X-Cache VCL of style "xcache" WITHOUT any PURGE
# handling, and whose vcl_recv ends in return (hash) for every request (as
# VCLs that strip cookies to cache everything do); written for cdnpurge's
# end-to-end tests. Template fields: {{.OriginHost}}, {{.OriginPort}},
# {{.Grace}} (beresp.grace, seconds); {{.Name}} ({{.Name}}) appears nowhere
# in responses and no token is used.
#
# PURGE <path>  not handled, so it is an ordinary cache lookup and purges
#               nothing: on a cached URL a hit, 200 with the object (X-Varnish
#               two ids, X-Cache: hit cached); on an uncached one a miss,
#               fetched from the origin with GET and stored (X-Cache: miss
#               cached). Any 200 from this style proves nothing was purged.
# BAN, tags     the same: every method is a lookup.
#
# Evidence: X-Cache = WHAT STORAGE, as in style "xcache":
#   hit    X-Cache: hit cached
#   stale  X-Cache: hit graced cached   (served in grace, past its TTL)
#   miss   X-Cache: miss cached, or miss uncacheable (hit-for-miss)
#   pass   X-Cache: pass uncacheable    (only what Varnish itself passes)
#   synth  X-Cache: synth synth         (errors)
# X-Varnish (two ids on a hit) and Age as usual.

backend default {
    .host = "{{.OriginHost}}";
    .port = "{{.OriginPort}}";
}

sub vcl_recv {
    unset req.http.X-Cache;
    # Cookies make the built-in VCL pass: drop them and cache everything.
    unset req.http.Cookie;
    return (hash);
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

sub vcl_backend_response {
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
