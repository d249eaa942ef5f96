/*
  Reverse and bind shells in scripts, crontabs and start-up files.
*/

rule reverse_shell_dev_tcp
{
    meta:
        description = "bash redirection to /dev/tcp or /dev/udp (reverse shell)"
        severity = "critical"
    strings:
        $a = /(bash|sh)\s+-i\s*[>&]+\s*\/dev\/(tcp|udp)\// ascii
        $b = /\/dev\/tcp\/[0-9a-zA-Z.\-]{3,255}\/[0-9]{1,5}/ ascii
    condition:
        any of them
}

rule reverse_shell_netcat_exec
{
    meta:
        description = "netcat or socat handing a shell to a socket"
        severity = "critical"
    strings:
        $nc = /\b(nc|ncat|netcat)(\.traditional|\.openbsd)?\s+[^\n]{0,80}-[a-z]*e\s*\/bin\/(ba)?sh/ ascii
        $mkfifo = /mkfifo\s+[^\n]{1,80};?\s*[^\n]{0,80}\b(nc|ncat|netcat)\b[^\n]{0,80}\/bin\/(ba)?sh/ ascii
        $socat = /socat\s+[^\n]{0,120}exec:['"]?(\/bin\/)?(ba)?sh/ ascii nocase
    condition:
        any of them
}

rule reverse_shell_scripting
{
    meta:
        description = "Python, Perl, PHP or Ruby connecting a socket to a shell"
        severity = "high"
    strings:
        $py1 = "socket.socket(" ascii
        $py2 = "os.dup2(" ascii
        $py3 = /pty\.spawn\(\s*["']\/bin\/(ba)?sh/ ascii
        $pl1 = /use\s+Socket;/ ascii
        $pl2 = /exec\s*\(?\s*["']\/bin\/(ba)?sh\s+-i/ ascii
        $php = /fsockopen\s*\([^\n]{1,120}\)\s*;[^\n]{0,200}(exec|shell_exec|system|passthru|proc_open)\s*\(\s*["']\/bin\/(ba)?sh/ ascii
        $rb = /TCPSocket\.(new|open)\([^\n]{1,120}\)[^\n]{0,200}(exec|spawn)\s*[\( ]?\s*["']\/bin\/(ba)?sh/ ascii
    condition:
        filesize < 5MB and (($py1 and $py2 and $py3) or ($pl1 and $pl2) or $php or $rb)
}
