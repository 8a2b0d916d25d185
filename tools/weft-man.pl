#!/usr/bin/perl
# weft-man.pl - makes the manual pages of weft's calls from include/weft.h.
#
#   perl tools/weft-man.pl [options] include/weft.h
#     -o DIR          write DIR/<call>.3 for every public call
#     --list          print the pages it would write, man3/<call>.3, a line each
#     --check         check the header's documentation (below); exit 1 if not
#     --overview F    with --check: F (docs/weft.3) must name every call as
#                     "weft_x (3)", and name no call that has no page (in
#                     the header, or already in the -o directory)
#     --version V     the version in each page's title line (default: read
#                     from WEFT_VERSION_MAJOR/MINOR/PATCH)
#
# weft.h is the only source of the calls' documentation; its layout is
# described at its top ("How this header is laid out").  In short:
#
#  - A banner comment (a line of dashes, a title, a line of dashes) starts a
#    section.  A comment right below a banner, followed by a blank line,
#    introduces the section: it goes into every page of the section.
#  - A comment that ends right above a public declaration (WEFT_EXTERN, or a
#    static inline weft_ function) documents it, together with the public
#    declarations that follow it with no blank line or comment between them:
#    a family, written as one page named after its first call, plus a page
#    that is only ".so man3/<first>.3" for each other call.  Preprocessor
#    lines and forward declarations (struct iovec;) may sit in between.
#  - In such a comment, paragraphs are separated by an empty comment line.
#    A paragraph that starts with "Returns" is the RETURN VALUE; one that
#    starts with "Errors:" is ERRORS, one item a line: "-ECODE  meaning",
#    continued on the following lines.  Lines that start with "- " are a
#    list; a paragraph whose lines are all indented by two spaces or more is
#    shown as it is (a message, code).  The first sentence is the summary
#    of the NAME line.
#  - Every field of a public structure, and every member of a public enum,
#    has a comment of its own, above it or after it on its line.  Structures
#    whose field comments all start with "Opaque" are not shown; the others,
#    and enums, are shown in the pages of the calls whose prototypes name
#    them.
#
# --check fails (naming the line of weft.h) for a public call without a
# comment, or whose comment has no description besides RETURN VALUE and
# ERRORS, a field or an enum member without a comment, a typedef or a
# public macro without one, a comment after a declaration on its line (it
# would document nothing), and a character that is not ASCII.
#
# Written for perl-base alone: no modules beyond strict and warnings.

use strict;
use warnings;

my ($outdir, $list, $check, $overview, $version);
my @files;
while (@ARGV) {
  my $a = shift @ARGV;
  if ($a eq '-o') { $outdir = shift @ARGV; }
  elsif ($a eq '--list') { $list = 1; }
  elsif ($a eq '--check') { $check = 1; }
  elsif ($a eq '--overview') { $overview = shift @ARGV; }
  elsif ($a eq '--version') { $version = shift @ARGV; }
  elsif ($a =~ /^-/) { usage(); }
  else { push @files, $a; }
}
usage() unless @files == 1 && ($outdir || $list || $check);
usage() if $overview && !$check;

sub usage {
  print STDERR "usage: $0 [-o DIR] [--list] [--check [--overview weft.3]] "
    . "[--version V] weft.h\n";
  exit 2;
}

my $hdr = $files[0];
# What a page's SYNOPSIS includes: the header it was made from.
(my $hname = $hdr) =~ s{.*/}{};
open(my $fh, '<', $hdr) or die "$0: cannot read $hdr: $!\n";
my @lines = <$fh>;
close $fh;
chomp @lines;

my @problems;
sub problem { push @problems, "$hdr:$_[0]: $_[1]"; }

# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------

my @sections;      # { title, intro (lines), families }
my @families;      # { section, doc (lines), line, decls: [{name, proto}] }
my %family_of;     # call name -> family
my %types;         # type name -> { kind, doc, members: [{decl, doc, line}] }
my %macro_doc;     # macro name -> 1 if documented
my %vmacro;        # WEFT_VERSION_* values

my $section;
my $pending;       # the comment that ended on the line before, or undef
my $pending_line;
my $family;        # the family a declaration on the next line would join
my $after_banner = 0;

sub strip_comment {
  # The text of a comment's lines without /*, */ and the leading " * ".
  my @t;
  for my $l (@_) {
    my $s = $l;
    $s =~ s{^\s*/\*+}{};
    $s =~ s{\s*\*+/\s*$}{};
    $s =~ s{^\s*\*(?!/) ?}{};
    $s =~ s/\s+$//;
    push @t, $s;
  }
  shift @t while @t && $t[0] eq '';
  pop @t while @t && $t[-1] eq '';
  return [@t];
}

# Reads a comment starting on line $i; returns (text lines, last line).
sub read_comment {
  my ($i) = @_;
  my @c;
  while ($i < @lines) {
    push @c, $lines[$i];
    last if $lines[$i] =~ m{\*/};
    $i++;
  }
  return (strip_comment(@c), $i);
}

for (my $i = 0; $i < @lines; $i++) {
  my $l = $lines[$i];
  my $n = $i + 1;
  problem($n, "a character that is not ASCII") if $l =~ /[^\x00-\x7f]/;

  if ($l =~ m{^/\* -{20,} \*/$} && $i + 2 < @lines
      && $lines[$i + 2] =~ m{^/\* -{20,} \*/$}) {
    ($section = $lines[$i + 1]) =~ s{^/\*\s*|\s*\*/$}{}g;
    push @sections, { title => $section, intro => [], families => [] };
    $i += 2;
    $pending = undef;
    $family = undef;
    $after_banner = 1;
    next;
  }
  if ($l =~ /^\s*$/) {
    if ($pending && $after_banner && @sections) {
      $sections[-1]{intro} = $pending;
    }
    $pending = undef;
    $family = undef;
    $after_banner = 0;
    next;
  }
  if ($l =~ m{^\s*/\*}) {
    my ($text, $end) = read_comment($i);
    # Code after the comment's end on its last line is not expected.
    $pending = $text;
    $pending_line = $n;
    $family = undef;
    $i = $end;
    next;
  }
  if ($l =~ /^#\s*define\s+(\w+)/) {
    my $m = $1;
    if ($m =~ /^WEFT_VERSION_(MAJOR|MINOR|PATCH)$/) {
      my $part = $1;
      $vmacro{$part} = $1 if $l =~ /\s(\d+)\s*$/;
    }
    my $documented = $pending || $l =~ m{/\*} || $macro_doc{"\0last"};
    if ($m ne 'WEFT_H') {
      $macro_doc{$m} ||= $documented ? 1 : 0;
      problem($n, "the macro $m has no comment") unless $documented;
    }
    # Consecutive #defines share the comment above the first.
    $macro_doc{"\0last"} = $documented;
    next;
  }
  $macro_doc{"\0last"} = 0 unless $l =~ /^#/;
  if ($l =~ /^#/ || $l =~ /^\s*struct \w+;\s*$/ || $l =~ /^extern "C"/
      || $l =~ /^\}\s*$/) {
    next;   # neutral: keeps the pending comment and the family
  }

  if ($l =~ /^WEFT_EXTERN\b/ || $l =~ /^static inline\b/) {
    my $start = $n;
    my $d = $l;
    my $inline = $l =~ /^static inline\b/;
    while ($d !~ ($inline ? qr/\{/ : qr/;/) && $i + 1 < @lines) {
      $d .= "\n" . $lines[++$i];
    }
    if ($inline) {
      # Skip the body, up to its closing brace.
      my $depth = ($d =~ tr/{//) - ($d =~ tr/}//);
      while ($depth > 0 && $i + 1 < @lines) {
        my $b = $lines[++$i];
        $depth += ($b =~ tr/{//) - ($b =~ tr/}//);
      }
      $d =~ s/\s*\{.*//s;
      $d .= ';';
    }
    if ($d =~ m{;\s*/[*/]}) {
      problem($start, "a comment after the declaration documents nothing: "
        . "put it above");
      $d =~ s{;\s*/[*/].*}{;}s;
    }
    my $proto = $d;
    $proto =~ s/^WEFT_EXTERN\s+//;
    $proto =~ s/^static inline\s+//;
    $proto =~ s/\s*__attribute__\s*\(\(.*?\)\)//g;
    $proto =~ s/\s+/ /g;
    $proto =~ s/\( /(/g;
    if ($proto !~ /\b(weft_\w+)\s*\(/) {
      problem($start, "cannot read this declaration");
      next;
    }
    my $name = $1;
    if ($name =~ /^weft__/) {  # internal, even if visible
      $pending = undef;
      $family = undef;
      next;
    }
    if ($family_of{$name}) {   # the same call under #if / #else
      $pending = undef;
      next;
    }
    if (!$family) {
      $family = { section => $section, doc => $pending, line => $start,
                  decls => [] };
      push @families, $family;
      push @{$sections[-1]{families}}, $family if @sections;
    }
    push @{$family->{decls}}, { name => $name, proto => $proto };
    $family_of{$name} = $family;
    $pending = undef;
    $after_banner = 0;
    next;
  }

  if ($l =~ /^typedef (struct|enum) (\w+) \{/) {
    my ($kind, $tname) = ($1, $2);
    my $t = { kind => $kind, doc => $pending, members => [], line => $n };
    problem($n, "the $kind $tname has no comment") unless $pending;
    my $fdoc;
    my $fline;
    for ($i++; $i < @lines && $lines[$i] !~ /^\}/; $i++) {
      my $f = $lines[$i];
      my $fn = $i + 1;
      problem($fn, "a character that is not ASCII") if $f =~ /[^\x00-\x7f]/;
      if ($f =~ m{^\s*/\*}) {
        ($fdoc, $i) = read_comment($i);
        next;
      }
      next if $f =~ /^\s*$/;
      my ($decl, $trail) = ($f, undef);
      if ($f =~ m{^(.*?)\s*(/\*.*)$}) {
        $decl = $1;
        my ($c, $end) = read_comment($i);
        $c->[0] =~ s/^.*?\/\*\s*// if @$c && $c->[0] =~ m{/\*};
        $trail = $c;
        $trail->[0] =~ s/^\s+// if @$trail;
        $i = $end;
      }
      $decl =~ s/^\s+//;
      $decl =~ s/,$//;
      my $doc = $trail || $fdoc;
      my $what = $kind eq 'enum' ? 'member' : 'field';
      problem($fn, "the $what '$decl' of $tname has no comment") unless $doc;
      if ($fdoc && $trail) {
        problem($fn, "the $what '$decl' of $tname has two comments");
      }
      push @{$t->{members}}, { decl => $decl, doc => $doc || [] };
      $fdoc = undef;
    }
    $types{$tname} = $t;
    $pending = undef;
    $family = undef;
    next;
  }
  if ($l =~ /^typedef\b.*\b(weft_\w+)\b/ || $l =~ /^enum (weft_\w+) \{/) {
    my $tname = $1;
    problem($n, "the type $tname has no comment") unless $pending;
    $pending = undef;
    $family = undef;
    next;
  }
  # Anything else ends what came before.
  $pending = undef;
  $family = undef;
}

# ---------------------------------------------------------------------------
# From comment text to roff
# ---------------------------------------------------------------------------

# Inline text: escapes, calls and codes in bold.
sub inline {
  my ($s) = @_;
  $s =~ s/\\/\\e/g;
  $s =~ s/(?<![\w-])-(?=[\w.])/\\-/g;
  $s =~ s/\b(weft_\w+)\(\)/\\fB$1\\fP()/g;
  $s =~ s/(\\-E[A-Z0-9]+)\b/\\fB$1\\fP/g;
  $s =~ s/(?<![\w\\])(WEFT_[A-Z0-9_]+)\b/\\fB$1\\fP/g;
  $s =~ s/^([.'])/\\&$1/;
  return $s;
}

# Text without font changes, for the NAME line (read by whatis).
sub plain {
  my ($s) = @_;
  $s =~ s/\\/\\e/g;
  $s =~ s/(?<![\w-])-(?=[\w.])/\\-/g;
  return $s;
}

# Splits a comment into paragraphs (lists of lines).
sub paragraphs {
  my ($text) = @_;
  my (@p, $cur);
  for my $l (@$text) {
    if ($l eq '') {
      push @p, $cur if $cur;
      $cur = undef;
    } else {
      push @{$cur ||= []}, $l;
    }
  }
  push @p, $cur if $cur;
  return @p;
}

# A description: paragraphs, lists and literal blocks, as roff lines.
sub description {
  my (@paras) = @_;
  my @out;
  for my $p (@paras) {
    if (!grep { !/^\s{2,}\S/ } @$p) {   # every line indented: literal
      my ($ind) = map { /^(\s*)/ ? length($1) : 0 } $p->[0];
      for (@$p) { $ind = length($1) if /^(\s*)/ && length($1) < $ind; }
      push @out, '.PP', '.RS', '.nf';
      push @out, map { my $x = substr($_, $ind); inline($x); } @$p;
      push @out, '.fi', '.RE';
      next;
    }
    push @out, '.PP';
    my $in_list = 0;
    my $in_lit = 0;
    for my $l (@$p) {
      if ($l =~ /^\s*- (.*)/) {
        push @out, '.fi', '.RE' if $in_lit;
        $in_lit = 0;
        push @out, '.IP \(bu 3';
        push @out, inline($1);
        $in_list = 1;
      } elsif (!$in_list && $l =~ /^\s{2,}(\S.*)/) {
        # Lines indented inside a paragraph: a message or code, as it is.
        push @out, '.RS', '.nf' unless $in_lit;
        push @out, inline($1);
        $in_lit = 1;
      } else {
        # After a literal block the text goes on as a new paragraph (in a
        # field's description, an indented one).
        push @out, '.fi', '.RE', '.PP' if $in_lit;
        $in_lit = 0;
        (my $x = $l) =~ s/^\s+//;
        push @out, inline($x);
      }
    }
    push @out, '.fi', '.RE' if $in_lit;
    push @out, '.PP' if $in_list;
  }
  # Drop a .PP that only ends the text.
  pop @out while @out && $out[-1] eq '.PP';
  return @out;
}

sub errors {
  my (@paras) = @_;
  my @out;
  for my $p (@paras) {
    my @l = @$p;
    (my $first = shift @l) =~ s/^Errors:\s*//;
    unshift @l, $first if $first ne '';
    for my $x (@l) {
      if ($x =~ /^\s*(-E[A-Z0-9]+(?:,\s*-E[A-Z0-9]+)*)\s+(.*)$/) {
        push @out, '.TP', '.B ' . inline($1), inline($2);
      } else {
        (my $y = $x) =~ s/^\s+//;
        push @out, inline($y);
      }
    }
  }
  return @out;
}

sub split_doc {
  my ($doc) = @_;
  my (@desc, @ret, @err);
  for my $p (paragraphs($doc || [])) {
    if ($p->[0] =~ /^Returns\b/) { push @ret, $p; }
    elsif ($p->[0] =~ /^Errors:/) { push @err, $p; }
    else { push @desc, $p; }
  }
  return (\@desc, \@ret, \@err);
}

# The first sentence of the description, for the NAME line.
sub summary {
  my ($desc) = @_;
  return '' unless @$desc;
  my $t = join(' ', map { my $x = $_; $x =~ s/^\s+//; $x } @{$desc->[0]});
  $t =~ s/^(.*?[.!?])(\s|$).*/$1/;
  $t =~ s/\.$//;
  # A long sentence is cut at its first clause: "Waits for green thread t
  # to finish, stores ..." gives "waits for green thread t to finish".
  $t = $1 if length($t) > 60 && $t =~ /^(.{15,}?)[:;] /;
  $t = $1 if length($t) > 60 && $t =~ /^(.{30,}?)(?:, | \()/;
  # Lower case, as NAME lines have it, unless the word is a name.
  $t =~ s/^([A-Z])(?=[a-z]|\s)/\l$1/ unless $t =~ /^I\s/;
  return $t;
}

# A prototype as roff: types bold, parameter names italic (.BI).
sub synopsis {
  my ($proto) = @_;
  $proto =~ /^(.*?\bweft_\w+\s*\()(.*)(\)\s*;)$/s or return ('.B ' . $proto);
  my ($head, $params, $tail) = ($1, $2, $3);
  my @parts;       # alternating: bold, italic, bold, ...
  my $bold = $head;
  if ($params eq 'void' || $params eq '') {
    $bold .= $params;
  } else {
    # Split on the commas between parameters (not inside parentheses).
    my (@ps, $cur, $depth);
    $cur = '';
    $depth = 0;
    for my $ch (split //, $params) {
      $depth++ if $ch eq '(';
      $depth-- if $ch eq ')';
      if ($ch eq ',' && $depth == 0) { push @ps, $cur; $cur = ''; }
      else { $cur .= $ch; }
    }
    push @ps, $cur;
    for my $k (0 .. $#ps) {
      my $p = $ps[$k];
      $p =~ s/^\s+|\s+$//g;
      my ($pre, $name, $post);
      if ($p =~ /^(.*\(\s*\*\s*)(\w+)(\).*)$/) {  # a function pointer
        ($pre, $name, $post) = ($1, $2, $3);
      } elsif ($p =~ /^(.*?[\s*])(\w+)$/) {
        ($pre, $name, $post) = ($1, $2, '');
      } else {
        ($pre, $name, $post) = ($p, '', '');
      }
      $bold .= ($k ? ', ' : '') . $pre;
      if ($name ne '') {
        push @parts, $bold, $name;
        $bold = $post;
      }
    }
  }
  $bold .= $tail;
  push @parts, $bold;
  my @q = map { my $x = $_; $x =~ s/\\/\\e/g; $x =~ s/-/\\-/g;
                $x =~ s/"/\\(dq/g; $x =~ /[\s]/ || $x eq '' ? "\"$x\"" : $x }
          @parts;
  return (@parts == 1 ? '.B ' : '.BI ') . join(' ', @q);
}

# The structures and enums a family's prototypes name, shown in its page.
sub types_shown {
  my ($f) = @_;
  my @shown;
  my $protos = join("\n", map { $_->{proto} } @{$f->{decls}});
  for my $t (sort keys %types) {
    next unless $protos =~ /\b\Q$t\E\b/;
    my $ty = $types{$t};
    next if $ty->{kind} eq 'struct'
      && !grep { !(@{$_->{doc}} && $_->{doc}[0] =~ /^Opaque\b/) }
         @{$ty->{members}};
    push @shown, $t;
  }
  return @shown;
}

sub type_section {
  my ($t) = @_;
  my $ty = $types{$t};
  my @out = ('.SS The ' . $t . ($ty->{kind} eq 'enum' ? ' values' : ' structure'));
  my @d = description(paragraphs($ty->{doc} || []));
  shift @d if @d && $d[0] eq '.PP';
  push @out, @d;
  for my $m (@{$ty->{members}}) {
    push @out, '.TP', '.B ' . inline($m->{decl});
    my @md = description(paragraphs($m->{doc}));
    shift @md if @md && $md[0] eq '.PP';
    push @out, map { $_ eq '.PP' ? '.IP' : $_ } @md;
  }
  return @out;
}

# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------

for my $f (@families) {
  my @names = map { $_->{name} } @{$f->{decls}};
  if (!$f->{doc}) {
    problem($f->{line}, "@names: no comment above the declaration");
    next;
  }
  my ($desc) = split_doc($f->{doc});
  problem($f->{line}, "@names: the comment has no description") unless @$desc;
}
problem(1, "no public call found") unless @families;

if ($overview) {
  open(my $o, '<', $overview) or die "$0: cannot read $overview: $!\n";
  my %named;
  while (my $x = <$o>) {
    $named{$1} = $. while $x =~ /(weft_\w+)\s*(?:\\f[BPR])?\s*\(3\)/g;
  }
  close $o;
  for my $name (sort keys %family_of) {
    push @problems, "$overview: does not list $name (3)" unless $named{$name};
  }
  # A call of another header (weft_testing.h) has its page in the output
  # directory already, made from that header.
  for my $name (sort keys %named) {
    push @problems, "$overview:$named{$name}: $name (3) has no page"
      unless $family_of{$name} || ($outdir && -f "$outdir/$name.3");
  }
}

# ---------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------

if (!defined $version) {
  $version = defined $vmacro{MAJOR}
    ? join('.', map { $vmacro{$_} // 0 } qw(MAJOR MINOR PATCH)) : '';
}
# The date of the title lines: SOURCE_DATE_EPOCH, else weft.h's time.
my $epoch = $ENV{SOURCE_DATE_EPOCH} // (stat $hdr)[9];
my @tm = gmtime($epoch);
my $date = sprintf('%04d-%02d-%02d', $tm[5] + 1900, $tm[4] + 1, $tm[3]);

sub page {
  my ($f) = @_;
  my @names = map { $_->{name} } @{$f->{decls}};
  my $main = $names[0];
  my ($desc, $ret, $err) = split_doc($f->{doc});
  my @o;
  push @o, ".\\\" $main.3 - made by tools/weft-man.pl from $hname: edit the"
    . " comments there.";
  push @o, '.TH ' . uc($main) . " 3 $date \"weft $version\" \"weft manual\"";
  push @o, '.nh', '.ad l';
  push @o, '.SH NAME';
  push @o, join(', ', @names) . ' \- ' . plain(summary($desc));
  push @o, '.SH SYNOPSIS', '.nf', ".B #include <$hname>", '.PP';
  push @o, map { synopsis($_->{proto}) } @{$f->{decls}};
  push @o, '.fi', '.PP', 'Compile and link with',
    '.BR "cc prog.c $(pkg\-config \-\-cflags \-\-libs weft)" .';
  push @o, '.SH DESCRIPTION';
  my @d = description(@$desc);
  shift @d if @d && $d[0] eq '.PP';
  push @o, @d;
  push @o, type_section($_) for types_shown($f);
  my $s = (grep { grep { $_ == $f } @{$_->{families}} } @sections)[0];
  if ($s && @{$s->{intro}}) {
    push @o, '.SS ' . inline($s->{title});
    my @i = description(paragraphs($s->{intro}));
    shift @i if @i && $i[0] eq '.PP';
    push @o, @i;
  }
  if (@$ret) {
    push @o, '.SH RETURN VALUE';
    my @r = description(@$ret);
    shift @r if @r && $r[0] eq '.PP';
    push @o, @r;
  }
  if (@$err) {
    push @o, '.SH ERRORS', errors(@$err);
  }
  # SEE ALSO: the overview, the other calls of the section, then the calls
  # the text names.
  my %seen = map { $_ => 1 } @names;
  my @see = ('weft');
  if ($s) {
    for my $g (@{$s->{families}}) {
      my $m = $g->{decls}[0]{name};
      push @see, $m unless $seen{$m}++;
    }
  }
  my $all = join("\n", map { @$_ } @$desc, @$ret, @$err);
  my @named;
  while ($all =~ /\b(weft_\w+)\(\)/g) {
    my $m = $1;
    next unless $family_of{$m};
    $m = $family_of{$m}{decls}[0]{name};
    push @named, $m unless $seen{$m}++;
  }
  push @see, sort @named;
  push @o, '.SH SEE ALSO';
  push @o, map { ".BR $see[$_] (3)" . ($_ < $#see ? ',' : '') } 0 .. $#see;
  return join("\n", @o) . "\n";
}

my @pages;
for my $f (@families) {
  next unless $f->{doc};
  my @names = map { $_->{name} } @{$f->{decls}};
  push @pages, [ $names[0], page($f) ];
  push @pages, [ $_, ".so man3/$names[0].3\n" ] for @names[1 .. $#names];
}

if ($outdir) {
  for my $p (@pages) {
    my $file = "$outdir/$p->[0].3";
    open(my $out, '>', $file) or die "$0: cannot write $file: $!\n";
    print $out $p->[1];
    close $out or die "$0: cannot write $file: $!\n";
  }
}
if ($list) {
  print "man3/$_\n" for sort map { "$_.3" } keys %family_of;
}
if ($check) {
  if (@problems) {
    print STDERR "$_\n" for @problems;
    print STDERR "weft-man: " . scalar(@problems) . " problem(s) found\n";
    exit 1;
  }
  my $nf = grep { 1 } keys %family_of;
  my $nfields = 0;
  $nfields += @{$_->{members}} for values %types;
  print "weft-man: $nf calls on " . scalar(@families) . " pages, $nfields "
    . "fields and members, each documented\n";
}
exit 0;
