vcl 4.1;
# Style "fakepurge": an instance whose PURGE answers 200 and purges nothing
# (a VCL copied without its purge line, or a hostile instance), with the
# X-Cache evidence of the widely copied VCL; written for cdnpurge's
# end-to-end tests: a purge's verify must catch it. Template fields:
# {{.OriginHost}}, {{.OriginPort}}, {{.Grace}}; {{.Name}} ({{.Name}})
# appears nowhere in responses and no token is used.
#
# PURGE <path>  200 "Purged" from anyone; nothing is purged, soft or not.
# BAN, tags     not handled: piped to the origin.
#
# Evidence: X-Cache: hit | hit graced | miss (see style xcache), X-Varnish
# (two ids on a hit) and Age.

backend default {
    .host = "{{.OriginHost}}";
    .port = "{{.OriginPort}}";
}

sub vcl_recv {
    unset req.http.X-Cache;
    if (req.method == "PURGE") {
        return (synth(200, "Purged"));
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

sub vcl_backend_response {
    set beresp.grace = {{.Grace}}s;
}

sub vcl_deliver {
    set resp.http.X-Cache = req.http.X-Cache;
}
