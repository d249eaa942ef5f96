/*
  Web shells: scripts that hand request input to an evaluator or a shell.
  Part of forensic-container's container-change checks (forensics/containers/yarascan.py).
*/

rule webshell_php_request_eval
{
    meta:
        description = "PHP passing request input to eval/assert/system-like calls"
        severity = "critical"
    strings:
        $req1 = "$_GET" ascii nocase
        $req2 = "$_POST" ascii nocase
        $req3 = "$_REQUEST" ascii nocase
        $req4 = "$_COOKIE" ascii nocase
        $req5 = "php://input" ascii nocase
        $sink1 = /\b(eval|assert|system|passthru|shell_exec|exec|popen|proc_open|pcntl_exec)\s*\(/ nocase
        $sink2 = /`\s*\$_(GET|POST|REQUEST|COOKIE)/ nocase
        $sink3 = /\bcreate_function\s*\(/ nocase
    condition:
        filesize < 2MB and any of ($req*) and any of ($sink*)
}

rule webshell_php_obfuscated_eval
{
    meta:
        description = "PHP evaluating a decoded or decompressed payload"
        severity = "high"
    strings:
        $a = /eval\s*\(\s*(base64_decode|gzinflate|gzuncompress|gzdecode|str_rot13|strrev|hex2bin)\s*\(/ nocase
        $b = /assert\s*\(\s*(base64_decode|gzinflate|str_rot13)\s*\(/ nocase
        $c = /preg_replace\s*\(\s*['"].{1,20}\/e['"]/ nocase
    condition:
        filesize < 5MB and any of them
}

rule webshell_china_chopper
{
    meta:
        description = "China Chopper style one-liner"
        severity = "critical"
    strings:
        $php = /<\?php\s+@?eval\s*\(\s*\$_(POST|REQUEST)\s*\[/ nocase
        $asp = /<%@?\s*Page\s+Language\s*=\s*"?Jscript"?\s*%>\s*<%\s*eval\s*\(\s*Request/ nocase
        $asp2 = /eval\s*\(\s*Request\.Item\s*\[/ nocase
    condition:
        filesize < 64KB and any of them
}

rule webshell_jsp_exec
{
    meta:
        description = "JSP running a request parameter as a command"
        severity = "critical"
    strings:
        $exec = "Runtime.getRuntime().exec(" ascii
        $pb = "new ProcessBuilder(" ascii
        $param = "request.getParameter(" ascii
    condition:
        filesize < 2MB and $param and ($exec or $pb)
}
